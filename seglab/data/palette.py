"""`seglab data palette LABELS out=DIR palette=...`: colour masks to class-index masks.

mmseg reads a label's pixel values as class indices; a colour mask (RGB, each class drawn in
its palette colour, as Potsdam's and many annotation tools' are) has to be mapped first. Every
label under LABELS is read, each colour looked up in the palette (the class is its position),
and an 8-bit index mask of the same name (ending `.png`) written under DIR, in the same
sub-folders. LABELS is never changed: DIR must be a new folder outside it. A colour that is no
colour of the palette stops the conversion with the file and its pixels, unless `unknown=255`
maps such pixels to the ignore index.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from seglab.errors import ConfigError

LABEL_ENDINGS = (".png", ".bmp", ".tif", ".tiff", ".gif")
DONE_MARKER = ".seglab-palette.json"  # written last: the folder is whole
USAGE = "seglab data palette LABELS out=DIR palette=[[R,G,B],...]|DATASET [unknown=255]"


def palette_command(args: Sequence[str]) -> None:
    labels, options = _parse(args)
    if "out" not in options or "palette" not in options:
        raise ConfigError(f"seglab data palette: expected {USAGE}")
    palette = read_palette(options["palette"])
    unknown = options.get("unknown")
    if unknown is not None and not (unknown.isdigit() and int(unknown) <= 255):
        raise ConfigError(f"unknown={unknown}: expected a label value 0..255 (255: ignored)")
    out = Path(options["out"])
    counts = convert_folder(Path(labels), out, palette, None if unknown is None else int(unknown))
    total = counts.sum()
    shares = ", ".join(
        f"{i}: {c / total:.1%}" for i, c in enumerate(counts[: len(palette)]) if total
    )
    print(f"wrote {out}: index masks, label pixels per class {shares}")


def _parse(args: Sequence[str]) -> tuple[str, dict[str, str]]:
    positional = [a for a in args if "=" not in a]
    options = dict(a.split("=", 1) for a in args if "=" in a)
    if len(positional) != 1:
        raise ConfigError(f"seglab data palette {' '.join(args)}: expected {USAGE}")
    if not os.path.isdir(positional[0]):
        raise ConfigError(f"{positional[0]}: no such folder; expected the folder of colour masks")
    return positional[0], options


def read_palette(text: str) -> list[tuple[int, int, int]]:
    """`[[r,g,b],...]` (one colour per class, in class order), or an mmseg dataset class
    (`CityscapesDataset`) or seglab dataset option (`cityscapes`) whose palette to use."""
    if text.lstrip().startswith("["):
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = None
        ok = isinstance(value, list) and value and all(_is_colour(c) for c in value)
        if not ok:
            raise ConfigError(
                f"palette={text}: expected one [r,g,b] of 0..255 per class, e.g. "
                "palette=[[0,0,0],[255,255,255]]"
            )
        return [tuple(c) for c in value]
    from mmseg.registry import DATASETS

    from seglab import CONF_DIR

    name = text
    option = CONF_DIR / "dataset" / f"{text}.yaml"
    if DATASETS.get(name) is None and option.is_file():
        node = (yaml.safe_load(option.read_text()) or {}).get("dataset") or {}
        if node.get("palette"):
            return [tuple(c) for c in node["palette"]]
        name = node.get("type", name)
    palette = getattr(DATASETS.get(name), "METAINFO", {}).get("palette")
    if not palette:
        raise ConfigError(
            f"palette={text}: no mmseg dataset class or seglab dataset option with a palette; "
            "expected [[r,g,b],...] or a name such as CityscapesDataset"
        )
    return [tuple(int(v) for v in c) for c in palette]


def _is_colour(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)
    )


def convert_folder(
    labels: Path, out: Path, palette: list[tuple[int, int, int]], unknown: int | None
) -> np.ndarray:
    """Index masks of every colour mask under `labels`, written under `out`; the pixels per
    label value (256)."""
    labels, out = labels.resolve(), out.resolve()
    if out == labels or labels in out.parents:
        raise ConfigError(
            f"out={out}: inside {labels}, which is never changed; expected a folder beside it "
            f"(out={labels}_index)"
        )
    marker = out / DONE_MARKER
    if marker.is_file():
        done = json.loads(marker.read_text())
        if done.get("labels") == str(labels) and done.get("palette") == [list(c) for c in palette]:
            print(f"{out}: already written from {labels} with this palette; kept")
            return np.asarray(done["pixels"])
    if out.exists() and any(out.iterdir()):
        raise ConfigError(
            f"out={out}: exists and holds files seglab did not write; expected a new folder "
            "(move it, or give another out=)"
        )
    files = sorted(p for p in labels.rglob("*") if p.suffix.lower() in LABEL_ENDINGS)
    if not files:
        raise ConfigError(f"{labels}: no label files ending in {', '.join(LABEL_ENDINGS)}")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # a conversion that stopped half-way
    keys = np.array([_key(c) for c in palette])
    order = np.argsort(keys)
    pixels = np.zeros(256, dtype=np.int64)
    for path in files:
        index = _to_indices(path, keys, order, unknown)
        pixels += np.bincount(index.ravel(), minlength=256)
        target = partial / path.relative_to(labels).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(index, mode="L").save(target)
    record = {"labels": str(labels), "palette": [list(c) for c in palette]}
    (partial / DONE_MARKER).write_text(json.dumps({**record, "pixels": pixels.tolist()}))
    if out.exists():
        out.rmdir()  # empty (checked above)
    partial.rename(out)
    return pixels


def _key(colour: Sequence[int]) -> int:
    return (int(colour[0]) << 16) | (int(colour[1]) << 8) | int(colour[2])


def _to_indices(path: Path, keys: np.ndarray, order: np.ndarray, unknown: int | None) -> np.ndarray:
    with Image.open(path) as image:
        if len(image.getbands()) == 1 and image.mode != "P":
            raise ConfigError(
                f"{path}: a one-channel ({image.mode}) label, already class indices; expected "
                "colour masks (RGB or a palette image)"
            )
        rgb = np.asarray(image.convert("RGB")).astype(np.int64)
    found = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    at = np.searchsorted(keys[order], found)
    at = np.clip(at, 0, len(keys) - 1)
    known = keys[order][at] == found
    index = order[at]
    if not known.all():
        if unknown is None:
            strange = found[~known]
            colour = int(strange[0])
            rgb_text = f"[{colour >> 16},{(colour >> 8) & 255},{colour & 255}]"
            raise ConfigError(
                f"{path}: {strange.size} pixels of colour {rgb_text}, which is no colour of the "
                f"palette ({len(keys)} colours); add it to palette= in its class's place, or "
                "set unknown=255 to have such pixels ignored"
            )
        index = np.where(known, index, unknown)
    return index.astype(np.uint8)
