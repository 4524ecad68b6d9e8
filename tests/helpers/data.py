"""Small data sets written by the tests themselves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image


def ade20k_folder(
    root: Path,
    labels: Sequence[int] | None = None,
    n: int = 2,
    size: int | tuple[int, int] = 32,
    img_suffix: str = ".jpg",
    seg_map_suffix: str = ".png",
) -> Path:
    """A folder in ADE20K's layout (`images|annotations/training|validation`), `n` pairs per
    split of `size` pixels (or (height, width)), images and labels with the given endings.

    A label map cycles through `labels`; without them it holds two classes, a band of 1 on 0
    that its image shows brighter (a pair per index, the band a row lower each time).
    """
    for split in ("training", "validation"):
        for i in range(n):
            write_pair(
                root / "images" / split / f"{i}{img_suffix}",
                root / "annotations" / split / f"{i}{seg_map_suffix}",
                i,
                labels,
                size,
            )
    return root


def mmseg_folder(root: Path, n: int = 2, size: int = 32, split_files: bool = False) -> Path:
    """A folder in mmseg's own layout for a new data set: `img_dir|ann_dir/train|val`, `.jpg`
    images and `.png` labels; with `split_files`, both splits' pairs in `img_dir` and `ann_dir`
    themselves and each split's names (without ending) in `splits/train.txt` and
    `splits/val.txt`, so a data set that read the whole folder would find twice its pairs."""
    for split in ("train", "val"):
        names = [f"{split}_{i}" for i in range(n)]
        folder = "" if split_files else split
        for i, name in enumerate(names):
            write_pair(
                root / "img_dir" / folder / f"{name}.jpg",
                root / "ann_dir" / folder / f"{name}.png",
                i,
                None,
                size,
            )
        if split_files:
            (root / "splits").mkdir(exist_ok=True)
            (root / "splits" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


def write_pair(
    image_path: Path,
    label_path: Path,
    index: int,
    labels: Sequence[int] | None,
    size: int | tuple[int, int],
) -> None:
    """An image and its one-channel label map (see ade20k_folder)."""
    height, width = (size, size) if isinstance(size, int) else size
    if labels is None:
        label = np.zeros((height, width), np.uint8)
        label[height // 3 + index : 2 * height // 3, width // 6 : 5 * width // 6] = 1
    else:
        label = np.resize(np.array(labels, np.uint8), (height, width))
    image = np.stack([np.where(label > 0, 160, 40).astype(np.uint8)] * 3, axis=-1)
    image_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(image_path)
    Image.fromarray(label).save(label_path)


def write_label(
    path: Path, values: Sequence[int], size: int | tuple[int, int] = 32, dtype: type = np.uint8
) -> None:
    """A one-channel label map cycling through `values`, stored as `dtype` (np.uint16: a 16-bit
    PNG, whose values mmseg reads as 8 bits)."""
    height, width = (size, size) if isinstance(size, int) else size
    Image.fromarray(np.resize(np.array(values, dtype), (height, width))).save(path)


def decompression_bomb(path: Path, width: int = 14_000, height: int = 14_000) -> None:
    """A valid black 1-bit PNG of `width` x `height` pixels (196 million by default, over
    Pillow's limit of about 179 million) in a file of a few kilobytes."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the row's packed bits
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )
