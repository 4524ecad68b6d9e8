"""seglab's embedded data set: shapes on textured backgrounds, in the ADE20K folder layout.

Generated deterministically from a seed the first time a run asks for it, then reused:

    ROOT/images/{training,validation}/NNNNN.jpg
    ROOT/annotations/{training,validation}/NNNNN.png

Images are `image_size` pixels a side, or `image_shape` = [height, width] (mmseg's order for
crop sizes) where that is set: `dataset.synthetic.image_shape=${dataset.crop_size}` makes them
at any experiment's crop size (bench/throughput.py). Two keys, not one that takes both forms:
seglab refuses an override that turns a number into a list. The folder's name
(`cache_name`) holds every parameter the data depend on, so two data sets never share one.

Label values follow ADE20K: 0 marks unlabelled pixels (a thin outline around every shape, where
a pixel is half one class, half another), 1 is background, 2 square, 3 disc, 4 triangle; the
config's `reduce_zero_label=true` maps them to 255 (ignored), 0, 1, 2, 3. Shape colours are
drawn independently of the class, so only a shape's form tells its class.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from seglab.errors import ConfigError

SPLITS = {"training": 0, "validation": 1}
UNLABELLED, BACKGROUND, SQUARE, DISC, TRIANGLE = 0, 1, 2, 3, 4
FORMAT_VERSION = 3


def ensure_synthetic_dataset(
    root: str | os.PathLike,
    *,
    seed: int,
    num_train: int,
    num_val: int,
    image_size: int,
    image_shape: Sequence[int] | None = None,
) -> Path:
    """Generate the data set into `root` unless it is already there with these parameters."""
    root = Path(root)
    params = _params(seed, num_train, num_val, image_size, image_shape)
    height, width = _height_width(image_size, image_shape)
    marker = root / "seglab-synthetic.json"
    # one look at the folder: another process may rename its finished copy into place meanwhile
    if root.exists() and any(root.iterdir()):
        if marker.is_file() and json.loads(marker.read_text()) == params:
            return root
        raise ConfigError(
            f"dataset.data_root={str(root)!r} holds other files; expected an empty folder or a "
            "seglab synthetic data set"
        )
    # Written next to its final place and renamed, so parallel jobs never see half a data set.
    tmp = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for split, count in (("training", num_train), ("validation", num_val)):
        (tmp / "images" / split).mkdir(parents=True)
        (tmp / "annotations" / split).mkdir(parents=True)
        for index in range(count):
            rng = np.random.default_rng([seed, SPLITS[split], index])
            image, label = draw_sample(rng, (height, width))
            Image.fromarray(image).save(tmp / "images" / split / f"{index:05d}.jpg", quality=95)
            Image.fromarray(label).save(tmp / "annotations" / split / f"{index:05d}.png")
    (tmp / "seglab-synthetic.json").write_text(json.dumps(params, indent=1))
    try:
        if root.exists():
            root.rmdir()
        tmp.rename(root)
    except OSError:
        # another process finished first: its copy is the same data
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def cache_name(synthetic: Mapping[str, Any]) -> str:
    """The folder name under seglab's cache for `dataset.synthetic` (the `synthetic_name`
    resolver): every parameter of the data, so that changing any one of them (num_val too)
    makes a data set of its own instead of meeting another's folder. A square size keeps the
    short form (`v3-seed0-400+50x96`); `[height, width]` reads `...x512x1024`."""
    params = _params(**synthetic)
    size = params["image_size"]
    size_text = "x".join(map(str, size)) if isinstance(size, list) else str(size)
    return (
        f"synthetic_shapes/v{params['version']}-seed{params['seed']}-"
        f"{params['num_train']}+{params['num_val']}x{size_text}"
    )


def _params(
    seed: int,
    num_train: int,
    num_val: int,
    image_size: int,
    image_shape: Sequence[int] | None = None,
) -> dict[str, Any]:
    """What the data depend on, as the marker file records it: the size drawn, not the key
    that set it (`image_shape=[96,96]` is the data of `image_size=96`, recorded as `96`)."""
    height, width = _height_width(image_size, image_shape)
    return {
        "version": FORMAT_VERSION,
        "seed": int(seed),
        "num_train": int(num_train),
        "num_val": int(num_val),
        "image_size": height if height == width else [height, width],
    }


def _height_width(image_size: int, image_shape: Sequence[int] | None) -> tuple[int, int]:
    """(height, width) of the images; a value that is not a size is one line."""
    if image_shape is None:
        key, value, size = "image_size", image_size, (image_size, image_size)
    else:
        key, value, size = "image_shape", image_shape, tuple(image_shape)
    if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in size):
        raise ConfigError(f"dataset.synthetic.{key}={value!r}: expected [height, width] in pixels")
    if min(size) < 16:
        # a shape's radius is at least a tenth of the short side, and its outline takes 2 px
        raise ConfigError(f"dataset.synthetic.{key}={value!r}: at least 16 pixels a side")
    return size


def draw_sample(
    rng: np.random.Generator, size: int | tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """One RGB image and its label map (`size`: square side or (height, width)): one to four
    shapes that do not overlap."""
    height, width = (size, size) if isinstance(size, int) else size
    image = _background(rng, height, width)
    label = np.full((height, width), BACKGROUND, np.uint8)
    for _ in range(int(rng.integers(1, 5))):
        cls = int(rng.choice([SQUARE, DISC, TRIANGLE]))
        for _attempt in range(10):
            mask = _shape_mask(rng, cls, height, width)
            # a gap of two pixels keeps each outline whole: an occluded shape has no class
            if not (_grow(mask, 2) & (label != BACKGROUND)).any():
                break
        else:
            continue
        colour = rng.integers(0, 256, 3)
        shading = rng.normal(0, 3, (height, width, 1))
        image[mask] = np.clip(colour + shading[mask], 0, 255)
        label[mask] = cls
    label[_outlines(label)] = UNLABELLED
    return image.astype(np.uint8), label


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A gradient between two random colours under a coarse-grained noise texture.

    The texture is what tells background from shapes (which are flat); a shape's class can
    only come from its outline. The draws are those of the square version for a square size,
    so square data sets stay byte for byte what they were.
    """
    a, b = rng.integers(0, 256, (2, 3))
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
    t = (t - t.min()) / (np.ptp(t) + 1e-6)
    grain = rng.normal(0, 22, (height // 2 + 1, width // 2 + 1, 3))
    grain = np.kron(grain, np.ones((2, 2, 1)))
    return np.clip(a * (1 - t) + b * t + grain[:height, :width], 0, 255)


def _shape_mask(rng: np.random.Generator, cls: int, height: int, width: int) -> np.ndarray:
    radius = rng.uniform(0.1, 0.25) * min(height, width)
    cx, cy = rng.uniform(radius, [width - radius, height - radius])
    turn = rng.uniform(0, 2 * math.pi)
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    if cls == DISC:
        r = 0.85 * radius
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
    else:
        corners = 4 if cls == SQUARE else 3
        r = radius if cls == SQUARE else 1.15 * radius
        draw.polygon(
            [
                (
                    cx + r * math.cos(turn + 2 * math.pi * k / corners),
                    cy + r * math.sin(turn + 2 * math.pi * k / corners),
                )
                for k in range(corners)
            ],
            fill=1,
        )
    return np.asarray(canvas, bool)


def _grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    grown = mask.copy()
    for _ in range(pixels):
        grown[1:] |= grown[:-1].copy()
        grown[:-1] |= grown[1:].copy()
        grown[:, 1:] |= grown[:, :-1].copy()
        grown[:, :-1] |= grown[:, 1:].copy()
    return grown


def _outlines(label: np.ndarray) -> np.ndarray:
    """Pixels next to a pixel of another class (both sides of every boundary)."""
    edge = np.zeros(label.shape, bool)
    edge[:, 1:] |= label[:, 1:] != label[:, :-1]
    edge[:, :-1] |= label[:, 1:] != label[:, :-1]
    edge[1:, :] |= label[1:, :] != label[:-1, :]
    edge[:-1, :] |= label[1:, :] != label[:-1, :]
    return edge
