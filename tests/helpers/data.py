"""Small data sets written by the tests themselves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image


def ade20k_folder(
    root: Path, labels: Sequence[int] | None = None, n: int = 2, size: int = 32
) -> Path:
    """A folder in ADE20K's layout (`images|annotations/training|validation`), `n` pairs per
    split of `size` pixels, `.jpg` images and `.png` labels.

    A label map cycles through `labels`; without them it holds two classes, a band of 1 on 0
    that its image shows brighter (a pair per index, the band a row lower each time).
    """
    for split in ("training", "validation"):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
        for i in range(n):
            if labels is None:
                label = np.zeros((size, size), np.uint8)
                label[size // 3 + i : 2 * size // 3, size // 6 : 5 * size // 6] = 1
            else:
                label = np.resize(np.array(labels, np.uint8), (size, size))
            image = np.stack([np.where(label > 0, 160, 40).astype(np.uint8)] * 3, axis=-1)
            Image.fromarray(image).save(root / "images" / split / f"{i}.jpg")
            Image.fromarray(label).save(root / "annotations" / split / f"{i}.png")
    return root
