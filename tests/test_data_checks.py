"""Data that would give silently wrong results, or crash a run late, is refused in one line
naming the file: before training where a sample of each split shows it, else as it loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.checks.before_training import check_before_training
from seglab.config.convert import export_config
from seglab.errors import ConfigError
from tests.helpers import data
from tests.helpers.commands import error_line, last_error_line, run_seglab
from tests.helpers.data import ade20k_folder

QUICK = [
    "experiment=demo",
    "dataset=custom",
    "dataset.crop_size=[32,32]",
    "dataset.scale=[32,32]",
    "dataset.ratio_range=[1.0,1.0]",
    "train_dataloader.batch_size=4",
    "train_dataloader.num_workers=0",
    "train_dataloader.persistent_workers=false",
    "val_dataloader.num_workers=0",
    "val_dataloader.persistent_workers=false",
    "train_cfg.max_iters=12",
    "train_cfg.val_interval=12",
]


def files(root: Path, kind: str, split: str) -> list[Path]:
    """The split's images or labels in the order the data set lists them."""
    return sorted((root / kind / split).iterdir())


def write_label(path: Path, values: list[int], size: int = 32, mode: str = "L") -> None:
    label = np.resize(np.array(values, np.uint8), (size, size))
    Image.fromarray(label).convert(mode).save(path)


def test_binary_masks_saved_as_0_255_are_refused(capsys, tmp_path):
    root = ade20k_folder(tmp_path / "data", labels=[0, 255])
    line = error_line([*QUICK, f"dataset.data_root={root}"], capsys)
    assert "annotations/training/0.png" in line and "[0, 255]" in line
    assert "0/1" in line and "Image.open" in line  # how to convert them


def test_the_suggested_conversion_of_0_255_masks_fixes_every_split(capsys, tmp_path):
    """The command the line names, run as it is written, converts the training and the
    validation labels (it had converted the training split only: a second refusal followed)."""
    import subprocess
    import sys

    from seglab.checks.before_training import check_before_training
    from seglab.config.convert import export_config

    root = ade20k_folder(tmp_path / "data", labels=[0, 255])
    args = [*QUICK, f"dataset.data_root={root}"]
    line = error_line(args, capsys)
    command = line.split("e.g. ", 1)[1]
    assert command.startswith("python -c ")
    shell = sys.executable + command.removeprefix("python")
    subprocess.run(["bash", "-c", shell], check=True, timeout=60)
    check_before_training(export_config(args))
    for split in ("training", "validation"):
        for label in files(root, "annotations", split):
            assert set(np.unique(np.asarray(Image.open(label)))) <= {0, 1}, label


def test_two_class_labels_with_ignored_pixels_are_accepted(tmp_path):
    from seglab.checks.before_training import check_before_training
    from seglab.config.convert import export_config

    root = ade20k_folder(tmp_path / "data", labels=[0, 1, 255])
    check_before_training(export_config([*QUICK, f"dataset.data_root={root}"]))


THREE_CLASSES = ["dataset.classes=[a,b,c]", "dataset.palette=[[0,0,0],[1,1,1],[2,2,2]]"]


def refusal(root: Path, *overrides: str) -> str:
    """The message of the checks before training on `root`, which must refuse it."""
    with pytest.raises(ConfigError) as error:
        check_before_training(export_config([*QUICK, f"dataset.data_root={root}", *overrides]))
    assert "\n" not in str(error.value)
    return str(error.value)


def test_masks_saved_as_0_255_with_three_classes_are_refused(tmp_path):
    root = ade20k_folder(tmp_path / "data", labels=[0, 255])
    message = refusal(root, *THREE_CLASSES)
    assert "annotations/training/0.png holds only the values [0, 255]" in message
    assert "class indices 0..2 (255 only for pixels to ignore)" in message


def test_a_0_1_label_among_0_255_masks_does_not_hide_them(tmp_path):
    root = ade20k_folder(tmp_path / "data", labels=[0, 255], n=4)
    write_label(files(root, "annotations", "training")[2], [0, 1])
    message = refusal(root)
    assert "3 of the 4 labels sampled from train_dataloader.dataset" in message
    assert "annotations/training/0.png holds [0, 255]" in message and "25%" in message
    assert "0/1" in message and "Image.open" in message  # how to convert them


def test_255_saved_for_a_declared_class_is_refused(tmp_path):
    # classes 0, 1 and 2, the last saved as 255: a third of the pixels would be ignored
    root = ade20k_folder(tmp_path / "data", labels=[0, 1, 255], n=4)
    message = refusal(root, *THREE_CLASSES)
    assert message.startswith("33% of the label pixels sampled from train_dataloader.dataset")
    assert "class 2 ('c') of the 3 declared never occurs" in message and "more than 25%" in message


def test_few_ignored_pixels_with_a_class_the_sample_lacks_are_accepted(tmp_path):
    # a tenth of the pixels ignored, as in ADE20K; class c is not in the sample
    root = ade20k_folder(tmp_path / "data", labels=[0, 0, 0, 0, 0, 1, 1, 1, 1, 255], n=4)
    check_before_training(export_config([*QUICK, f"dataset.data_root={root}", *THREE_CLASSES]))


def test_labels_stored_1_to_n_without_reduce_zero_label_name_it(tmp_path):
    # three classes stored as 1, 2, 3 with 0 for unlabelled pixels (ADE20K's way)
    root = ade20k_folder(tmp_path / "data", labels=[0, 1, 2, 3], n=4)
    message = refusal(root, *THREE_CLASSES)
    assert "holds label 3 (with dataset.reduce_zero_label=false, expected labels 0..2" in message
    assert message.endswith("set dataset.reduce_zero_label=true")
    overrides = [*QUICK, f"dataset.data_root={root}", *THREE_CLASSES]
    check_before_training(export_config([*overrides, "dataset.reduce_zero_label=true"]))


def test_reduce_zero_label_on_a_frequent_class_0_is_refused(tmp_path):
    # classes 0, 1, 2 stored as such, 0 half the pixels: reduce_zero_label would ignore it
    root = ade20k_folder(tmp_path / "data", labels=[0, 0, 1, 2], n=4)
    args = [*QUICK, f"dataset.data_root={root}", *THREE_CLASSES]
    message = refusal(root, *THREE_CLASSES, "dataset.reduce_zero_label=true")
    assert message.startswith("dataset.reduce_zero_label=true: 50% of the label pixels read")
    assert "none is 3, which it would make class 2 ('c')" in message
    assert message.endswith("set dataset.reduce_zero_label=false")
    check_before_training(export_config([*args, "dataset.reduce_zero_label=false"]))


@pytest.mark.parametrize("labels", [[0, 1, 2, 3, 1, 2, 3, 1, 2, 3], [0, 0, 0, 1, 2, 3]])
def test_reduce_zero_label_on_labels_1_to_n_is_accepted(tmp_path, labels):
    # ADE20K's way, with a tenth or half of the pixels unlabelled: every class 1..3 occurs
    root = ade20k_folder(tmp_path / "data", labels=labels, n=4)
    args = [*QUICK, f"dataset.data_root={root}", *THREE_CLASSES]
    check_before_training(export_config([*args, "dataset.reduce_zero_label=true"]))


def test_16_bit_label_in_the_sample_is_named(capsys, tmp_path):
    root = ade20k_folder(tmp_path / "data", labels=[0, 1])
    label = files(root, "annotations", "training")[0]
    data.write_label(label, [0, 1, 258], dtype=np.uint16)
    line = error_line([*QUICK, f"dataset.data_root={root}"], capsys)
    assert f"{label} is a 16-bit label holding the value 258" in line
    assert "would silently become 2" in line


@pytest.mark.parametrize("kind", ["images", "annotations"])
@pytest.mark.parametrize("sizes", ["set", "found in the folder"])
def test_decompression_bomb_is_named(capsys, tmp_path, kind, sizes):
    root = ade20k_folder(tmp_path / "data", labels=[0, 1])
    bomb = files(root, kind, "training")[0]
    data.decompression_bomb(bomb)
    args = [*QUICK, f"dataset.data_root={root}"]
    if sizes != "set":  # read from the images' headers (seglab/config/data_layout.py)
        args = [a for a in args if not a.startswith(("dataset.crop_size", "dataset.scale"))]
    line = error_line(args, capsys)
    assert str(bomb) in line and "196000000 pixels" in line and "decompression bomb" in line


def test_symbolic_link_loop_in_the_image_folder_is_named(capsys, tmp_path):
    root = ade20k_folder(tmp_path / "data", labels=[0, 1])
    loop = root / "images" / "training" / "again"
    loop.symlink_to(".")  # the folder itself
    line = error_line([*QUICK, f"dataset.data_root={root}"], capsys)
    assert f"train_dataloader.dataset: {loop} is a symbolic link to '.'" in line
    assert "remove the link" in line


def test_bad_label_in_the_last_validation_file_is_named(capsys, tmp_path):
    root = ade20k_folder(tmp_path / "data", labels=[0, 1], n=24)
    last = files(root, "annotations", "validation")[-1]
    write_label(last, [0, 1, 7])
    line = error_line([*QUICK, f"dataset.data_root={root}"], capsys)
    assert str(last) in line and "label 7" in line and "2 classes" in line


def test_bad_label_in_the_20th_training_file_is_named(capsys, tmp_path):
    root = ade20k_folder(tmp_path / "data", labels=[0, 1], n=20)
    twentieth = files(root, "annotations", "training")[19]
    write_label(twentieth, [0, 1, 3])
    line = error_line([*QUICK, f"dataset.data_root={root}"], capsys)
    assert str(twentieth) in line and "label 3" in line


def test_image_without_a_label_is_named(capsys, tmp_path):
    root = ade20k_folder(tmp_path / "data", labels=[0, 1], n=4)
    (root / "annotations" / "training" / "2.png").unlink()
    line = error_line([*QUICK, f"dataset.data_root={root}"], capsys)
    assert "train_dataloader.dataset" in line and "1 of 4 images have no label" in line
    assert str(root / "images" / "training" / "2.jpg") in line
    assert str(root / "annotations" / "training") in line and "'.png'" in line


def test_empty_split_is_named(capsys, tmp_path):
    root = ade20k_folder(tmp_path / "data", labels=[0, 1])
    for image in files(root, "images", "validation"):
        image.unlink()
    line = error_line([*QUICK, f"dataset.data_root={root}"], capsys)
    assert "val_dataloader.dataset: no images ending in '.jpg'" in line
    assert str(root / "images" / "validation") in line


@pytest.mark.parametrize("problem", ["smaller", "colour"])
def test_label_that_does_not_fit_its_image_is_named_before_training(capsys, tmp_path, problem):
    root = ade20k_folder(tmp_path / "data", labels=[0, 1])
    label = files(root, "annotations", "training")[-1]
    if problem == "smaller":
        write_label(label, [0, 1], size=16)
    else:
        write_label(label, [0, 1], mode="RGB")
    line = error_line([*QUICK, f"dataset.data_root={root}"], capsys)
    expected = "16x16 pixels but its image" if problem == "smaller" else "3-channel (RGB)"
    assert str(label) in line and expected in line


def data_with_a_file_the_sample_misses(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """24 pairs; the second file of the training `kind` is not among those read before
    training, so only its loading can find it."""
    root = ade20k_folder(tmp_path / "data", labels=[0, 1], n=24)
    return root, files(root, kind, "training")[1]


@pytest.mark.train
@pytest.mark.processes
@pytest.mark.parametrize(
    ("problem", "workers", "expected"),
    [("truncated", 1, "cannot be decoded"), ("empty", 0, "the file is empty (0 bytes)")],
)
def test_image_that_fails_to_load_during_training_is_named(tmp_path, problem, workers, expected):
    root, image = data_with_a_file_the_sample_misses(tmp_path, "images")
    image.write_bytes(image.read_bytes()[:20] if problem == "truncated" else b"")
    result = run_seglab(
        [*QUICK, f"dataset.data_root={root}", f"train_dataloader.num_workers={workers}"],
        memory_limit=8 << 30,
    )
    line = last_error_line(result)
    assert str(image) in line and expected in line, line
    assert "Checkpoints will be saved to" in result.stdout, "found while training, not before"


@pytest.mark.train
@pytest.mark.parametrize(
    ("problem", "workers", "expected"),
    [
        ("smaller", 1, "the label is 16x16 pixels but its image"),
        ("colour", 0, "a label of shape (32, 32, 3) (3 channels)"),
    ],
)
def test_label_that_does_not_fit_its_image_during_training_is_named(
    capsys, tmp_path, problem, workers, expected
):
    root, label = data_with_a_file_the_sample_misses(tmp_path, "annotations")
    if problem == "smaller":
        write_label(label, [0, 1], size=16)
    else:
        write_label(label, [0, 1], mode="RGB")
    args = [*QUICK, f"dataset.data_root={root}", f"train_dataloader.num_workers={workers}"]
    line = error_line(args, capsys)
    assert str(label) in line and expected in line, line


@pytest.mark.processes
def test_crop_beyond_memory_is_refused_before_training(tmp_path):
    root = ade20k_folder(tmp_path / "data", labels=[0, 1])
    # the limit keeps a run that is not refused from taking the machine's memory
    result = run_seglab(
        [*QUICK, f"dataset.data_root={root}", "dataset.crop_size=[4096,4096]"],
        memory_limit=8 << 30,
    )
    line = last_error_line(result)
    assert "dataset.crop_size=[4096, 4096]: a training batch needs an estimated" in line
    assert "GiB" in line and "batch_size=4" in line
    assert "at most 32x32 after resizing" in line
    assert "Iter(train)" not in result.stdout and "Iter(train)" not in result.stderr
