"""Every label is checked as it loads, in the train, val and test loaders alike, not only the
sample read before training: a value beyond the classes (after reduce_zero_label), or a 16-bit
file whose values mmseg would read modulo 256, is named in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config

from seglab.checks.before_training import check_before_training
from seglab.config.convert import export_config
from seglab.errors import DataError
from seglab.run.data_loading import check_files_as_they_load
from tests.helpers.commands import error_line
from tests.helpers.data import ade20k_folder, write_label
from tests.test_data_checks import QUICK, files

SPLITS = {
    "train_dataloader": "training",
    "val_dataloader": "validation",
    "test_dataloader": "validation",
}


def data_outside_the_sample(tmp_path: Path, split: str, labels: list[int]) -> tuple[Path, Path]:
    """24 pairs per split, labels cycling through `labels`; the second label of `split` is
    not among the 16 read before training."""
    root = ade20k_folder(tmp_path / "data", labels=labels, n=24)
    return root, files(root, "annotations", split)[1]


def checked_config(root: Path, *overrides: str) -> Config:
    """The Runner's config of the demo model on `root`, past the checks before training, its
    loading transforms wrapped as seglab's training wraps them."""
    mm = export_config([*QUICK, f"dataset.data_root={root}", *overrides])
    check_before_training(mm)
    check_files_as_they_load(mm)
    return mm


def load(mm: Config, loader: str, label: Path) -> dict:
    """The entry of `label` through `loader`'s own pipeline, as its data loader loads it."""
    import mmseg.datasets  # noqa: F401  (registers the dataset classes and transforms)
    from mmengine.registry import DefaultScope
    from mmseg.registry import DATASETS

    with DefaultScope.overwrite_default_scope("mmseg"):
        dataset = DATASETS.build(mm[loader]["dataset"])
        paths = [dataset.get_data_info(i)["seg_map_path"] for i in range(len(dataset))]
        return dataset[paths.index(str(label))]


@pytest.mark.parametrize("loader", list(SPLITS))
def test_label_beyond_the_classes_outside_the_sample_is_named_as_it_loads(tmp_path, loader):
    root, label = data_outside_the_sample(tmp_path, SPLITS[loader], [0, 1])
    write_label(label, [0, 1, 7])
    mm = checked_config(root)  # the sample does not hold it
    with pytest.raises(DataError) as error:
        load(mm, loader, label)
    message = str(error.value)
    assert message.startswith(f"{label}: ") and "\n" not in message
    assert "2 classes" in message and "label 7" in message and "expected labels 0..1" in message


def test_decompression_bomb_outside_the_sample_is_named_before_it_is_decoded(tmp_path):
    """mmcv decodes with OpenCV, whose pixel limit is far above Pillow's: Pillow's look at the
    header refuses the file first."""
    from tests.helpers.data import decompression_bomb

    root, label = data_outside_the_sample(tmp_path, "training", [0, 1])
    mm = checked_config(root)
    image = Path(str(label).replace("annotations", "images")).with_suffix(".jpg")
    image.unlink()
    decompression_bomb(image)  # a PNG's content under the image's name: Pillow reads either
    with pytest.raises(DataError) as error:
        load(mm, "train_dataloader", label)
    message = str(error.value)
    assert message.startswith(f"{image}: ") and "196000000 pixels" in message


def test_ignored_pixels_and_labels_within_the_classes_load(tmp_path):
    root, label = data_outside_the_sample(tmp_path, "training", [0, 1])
    write_label(label, [0, 1, 255])
    loaded = load(checked_config(root), "train_dataloader", label)
    assert set(np.unique(loaded["data_samples"].gt_sem_seg.data).tolist()) <= {0, 1, 255}


def test_label_beyond_the_classes_after_reduce_zero_label(tmp_path):
    # stored as 1 and 2 for the two classes, 0 for unlabelled pixels, as ADE20K stores them
    root, label = data_outside_the_sample(tmp_path, "validation", [1, 2])
    mm = checked_config(root, "dataset.reduce_zero_label=true")
    write_label(label, [0, 1, 2])  # 0: ignored as it loads
    load(mm, "val_dataloader", label)
    write_label(label, [0, 1, 2, 3])  # 3 loads as 2, beyond classes 0 and 1
    with pytest.raises(DataError) as error:
        load(mm, "val_dataloader", label)
    message = str(error.value)
    assert str(label) in message and "label 3" in message
    assert "reduce_zero_label=true, expected labels 0..2 or 255" in message


def test_16_bit_label_whose_values_would_wrap_is_named_as_it_loads(tmp_path):
    root, label = data_outside_the_sample(tmp_path, "training", [0, 1])
    mm = checked_config(root)
    write_label(label, [0, 1], dtype=np.uint16)  # 16 bits, values that fit in 8: read as they are
    load(mm, "train_dataloader", label)
    write_label(label, [0, 1, 257], dtype=np.uint16)  # 257 would load as 1, a valid class
    with pytest.raises(DataError) as error:
        load(mm, "train_dataloader", label)
    message = str(error.value)
    assert message.startswith(f"{label} is a 16-bit label holding the value 257")
    assert "would silently become 1" in message and "8-bit" in message


@pytest.mark.train
def test_label_beyond_the_classes_stops_training_naming_its_file(capsys, tmp_path):
    root, label = data_outside_the_sample(tmp_path, "training", [0, 1])
    write_label(label, [0, 1, 7])
    line = error_line([*QUICK, f"dataset.data_root={root}"], capsys)
    assert str(label) in line and "label 7" in line and "2 classes" in line, line


@pytest.mark.train
@pytest.mark.parametrize("tta", ["false", "true"])
def test_seglab_test_names_a_label_beyond_the_classes(trained_run_copy, tmp_path, capsys, tta):
    """`seglab test` checks its labels as they load too, also inside TestTimeAug's pipeline."""
    import shutil

    test_set = Config.fromfile(str(trained_run_copy / "config.py")).test_dataloader.dataset
    data = tmp_path / "data"
    shutil.copytree(test_set.data_root, data)
    label = sorted((data / test_set.data_prefix.seg_map_path).glob("*.png"))[-1]
    write_label(label, [0, 1, 9], size=64)
    line = error_line(
        [
            "test",
            f"run_dir={trained_run_copy}",
            f"tta={tta}",
            f"test_dataloader.dataset.data_root={data}",
        ],
        capsys,
        trained=True,
    )
    assert line.startswith(f"seglab: error: {label}: ") and " 9" in line
