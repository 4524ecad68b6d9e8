"""The embedded data set: deterministic, in the ADE20K layout, and about shapes, not colours."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.config.compose import compose
from seglab.config.synthetic_data import (
    BACKGROUND,
    DISC,
    SQUARE,
    TRIANGLE,
    cache_name,
    ensure_synthetic_dataset,
)
from seglab.errors import ConfigError

PARAMS = dict(num_train=12, num_val=4, image_size=64)


def digest(root: Path) -> str:
    h = hashlib.sha1()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a = ensure_synthetic_dataset(tmp_path / "a", seed=3, **PARAMS)
    b = ensure_synthetic_dataset(tmp_path / "b", seed=3, **PARAMS)
    c = ensure_synthetic_dataset(tmp_path / "c", seed=4, **PARAMS)
    assert digest(a) == digest(b) != digest(c)


def test_ade20k_layout_and_label_values(tmp_path):
    root = ensure_synthetic_dataset(tmp_path / "d", seed=0, **PARAMS)
    for split, n in (("training", 12), ("validation", 4)):
        images = sorted((root / "images" / split).glob("*.jpg"))
        labels = sorted((root / "annotations" / split).glob("*.png"))
        assert len(images) == len(labels) == n
        assert [p.stem for p in images] == [p.stem for p in labels]
    values = set()
    for path in (root / "annotations").rglob("*.png"):
        values |= set(np.unique(np.asarray(Image.open(path))).tolist())
    assert values == {0, BACKGROUND, SQUARE, DISC, TRIANGLE}


def test_written_once_then_reused(tmp_path):
    root = ensure_synthetic_dataset(tmp_path / "e", seed=0, **PARAMS)
    first = (root / "images" / "training" / "00000.jpg").stat().st_mtime_ns
    ensure_synthetic_dataset(root, seed=0, **PARAMS)
    assert (root / "images" / "training" / "00000.jpg").stat().st_mtime_ns == first


def test_refuses_a_folder_with_other_files(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="holds other files"):
        ensure_synthetic_dataset(tmp_path / "mine", seed=0, **PARAMS)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_colour_does_not_tell_the_class(tmp_path):
    """Each shape class's mean colour is near the others': only the outline can tell them."""
    root = ensure_synthetic_dataset(tmp_path / "f", seed=0, num_train=60, num_val=1, image_size=64)
    sums = {c: np.zeros(3) for c in (SQUARE, DISC, TRIANGLE)}
    counts = dict.fromkeys(sums, 0)
    for path in (root / "annotations" / "training").glob("*.png"):
        label = np.asarray(Image.open(path))
        image = np.asarray(Image.open(root / "images" / "training" / f"{path.stem}.jpg"), float)
        for c in sums:
            sums[c] += image[label == c].sum(0)
            counts[c] += (label == c).sum()
    means = np.array([sums[c] / counts[c] for c in sums])
    assert np.ptp(means, axis=0).max() < 40, means


def test_images_of_a_non_square_shape_in_a_folder_of_their_own(tmp_path):
    """`image_shape=[height, width]` (a benchmark's crop size) draws images of that size; the
    folder name holds every parameter, and a square shape is the data of `image_size`."""
    params = dict(seed=0, num_train=3, num_val=1, image_size=96)
    root = ensure_synthetic_dataset(tmp_path / "g", **params, image_shape=[40, 72])
    for path in (root / "images").rglob("*.jpg"):
        label = Image.open(root / "annotations" / path.parent.name / f"{path.stem}.png")
        assert Image.open(path).size == label.size == (72, 40)  # PIL: width, height
        assert set(np.unique(np.asarray(label)).tolist()) <= {0, BACKGROUND, SQUARE, DISC, TRIANGLE}
    names = {
        cache_name({**params, "image_shape": [40, 72]}),
        cache_name({**params, "image_shape": None}),
        cache_name({**params, "image_shape": None, "num_val": 2}),
        cache_name({**params, "image_shape": None, "seed": 1}),
    }
    assert len(names) == 4
    assert cache_name({**params, "image_shape": [96, 96]}) == cache_name(params)
    square = ensure_synthetic_dataset(tmp_path / "h", **{**params, "image_size": 64})
    ensure_synthetic_dataset(square, **params, image_shape=[64, 64])  # the same data: reused
    with pytest.raises(ConfigError, match=r"image_shape=\[40\]: expected \[height, width\]"):
        ensure_synthetic_dataset(tmp_path / "i", **params, image_shape=[40])


def test_image_shape_follows_the_crop_size_in_the_config():
    cfg = compose(
        [
            "experiment=demo",
            "dataset.crop_size=[48,80]",
            "dataset.synthetic.image_shape=${dataset.crop_size}",
        ]
    )
    assert cfg.dataset.data_root.endswith("synthetic_shapes/v3-seed0-400+50x48x80")
