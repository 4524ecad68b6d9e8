"""`seglab data check`: every file of every split, counted and judged."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from seglab.checks.before_training import check_before_training
from seglab.cli import main
from seglab.config.convert import export_config
from seglab.data.inventory import median_frequency_weights
from tests.helpers import data
from tests.helpers.commands import error_line
from tests.helpers.data import ade20k_folder
from tests.test_data_checks import QUICK, THREE_CLASSES, files


def report(args: list[str], capsys) -> str:
    capsys.readouterr()
    main(["data", "check", *args])
    return capsys.readouterr().out


def test_every_split_is_counted_with_its_class_shares(capsys, tmp_path):
    root = ade20k_folder(tmp_path / "data", labels=[0, 0, 1, 2], n=3)
    # a validation label of class 0 only, and a training image again in the validation split
    data.write_label(files(root, "annotations", "validation")[0], [0])
    data.write_label(files(root, "annotations", "validation")[1], [0])
    data.write_label(files(root, "annotations", "validation")[2], [0])
    rng = np.random.default_rng(0)
    for image in [*files(root, "images", "training"), *files(root, "images", "validation")]:
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), np.uint8)).save(image)
    shutil.copy(files(root, "images", "training")[0], files(root, "images", "validation")[2])
    out = report([*QUICK, f"dataset.data_root={root}", *THREE_CLASSES, "workers=2"], capsys)
    train, val = out.split("val_dataloader.dataset: ")[:2]
    assert "train_dataloader.dataset: 3 images in" in train and ", 3 labels" in train
    assert "image sizes (height x width): 32x32 (3)" in train
    assert "label pixels per class: a 50.0%, b 25.0%, c 25.0%; ignored 0.0%" in train
    assert "classes absent: none" in train
    assert "classes absent: b, c" in val
    assert "warning: 1 images of val_dataloader.dataset are also in train_dataloader" in out
    assert "read 6 images and their labels of 2 splits" in out and "with 2 processes" in out


def test_the_suggested_class_weights_are_a_setting_that_trains(capsys, tmp_path):
    root = ade20k_folder(tmp_path / "data", labels=[0, 0, 0, 0, 0, 0, 1, 1, 2, 2], n=2)
    args = [*QUICK, f"dataset.data_root={root}", *THREE_CLASSES]
    out = report([*args, "workers=1"], capsys)
    setting = out.split("for rare classes to count more in the loss: ")[1].split()[0]
    # 1024 pixels cycling through 10 values: class a on 616, b and c on 204 each
    assert setting == "++model.decode_head.loss_decode.class_weight=[0.331,1,1]"
    cfg = export_config([*args, setting])
    assert cfg.model.decode_head.loss_decode.class_weight == [0.331, 1, 1]
    check_before_training(cfg)


def test_reduce_zero_label_shares_count_0_as_ignored(capsys, tmp_path):
    root = ade20k_folder(tmp_path / "data", labels=[0, 1, 2, 3], n=2)
    args = [*QUICK, f"dataset.data_root={root}", *THREE_CLASSES, "dataset.reduce_zero_label=true"]
    out = report(args, capsys)
    assert "label pixels per class: a 25.0%, b 25.0%, c 25.0%; ignored 25.0%" in out


def test_a_bad_label_the_sample_before_training_misses_is_found(capsys, tmp_path):
    # 40 training files: the sample before training reads 16 of them, not the 2nd
    root = ade20k_folder(tmp_path / "data", labels=[0, 1], n=40, size=8)
    label = files(root, "annotations", "training")[1]
    data.write_label(label, [0, 1, 7], size=8)
    args = [*QUICK, f"dataset.data_root={root}"]
    check_before_training(export_config(args))  # the sample misses it
    line = error_line(["data", "check", *args], capsys)
    assert f"{label} holds label 7" in line
    assert "expected labels 0..1 or 255" in line


def test_a_colour_mask_is_found_with_its_conversion(capsys, tmp_path):
    root = ade20k_folder(tmp_path / "data", labels=[0, 1], n=20, size=8)
    label = files(root, "annotations", "validation")[1]
    colour = np.zeros((8, 8, 3), np.uint8)
    Image.fromarray(colour).save(label)
    line = error_line(["data", "check", *QUICK, f"dataset.data_root={root}"], capsys)
    assert f"{label} is a 3-channel (RGB) colour image" in line and "seglab data palette" in line


@pytest.mark.parametrize("value", ["0", "two"])
def test_workers_must_be_a_count(capsys, tmp_path, value):
    root = ade20k_folder(tmp_path / "data")
    line = error_line(
        ["data", "check", *QUICK, f"dataset.data_root={root}", f"workers={value}"], capsys
    )
    assert line.endswith(f"workers={value}: expected a number of processes, 1 or more")


def test_median_frequency_weights():
    assert median_frequency_weights(np.array([6, 2, 2, 0, 9]), 3) == [0.333, 1.0, 1.0]
    # a class absent from the training labels gets the others' largest weight
    assert median_frequency_weights(np.array([6, 2, 0]), 3) == [0.667, 2.0, 2.0]
    assert median_frequency_weights(np.array([6, 0, 0]), 3) is None


def test_the_readme_s_command(capsys, tmp_path):
    from tests.test_colour_masks import readme_commands

    root = ade20k_folder(tmp_path / "roads", n=2)
    ((command),) = readme_commands("### Checking a whole data set")
    assert command[:3] == ["seglab", "data", "check"]
    out = report([arg.replace("/data/roads", str(root)) for arg in command[3:]], capsys)
    assert "label pixels per class: background" in out and "road" in out
