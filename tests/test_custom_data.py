"""A user's own folder under `dataset=custom`: its file endings and image size are found in it,
mmseg's other layouts work through `dataset.*` keys, and what does not fit is one line before
training. The data sets are listed by mmseg's own dataset class."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmengine.config import Config

from seglab.checks.before_training import check_before_training
from seglab.config.convert import export_config
from tests.helpers.commands import error_line, train
from tests.helpers.data import ade20k_folder, mmseg_folder

CUSTOM = ["experiment=demo", "dataset=custom"]
MMSEG_LAYOUT = [
    "dataset.img_dir=img_dir",
    "dataset.ann_dir=ann_dir",
    "dataset.train_split=train",
    "dataset.val_split=val",
]


def listed(dataset: dict) -> list[tuple[str, str]]:
    """(image, label) file names of each entry, as mmseg's dataset class lists them."""
    import mmseg.datasets  # noqa: F401  (registers the dataset classes)
    from mmseg.registry import DATASETS

    built = DATASETS.build({**dataset, "pipeline": []})
    entries = [built.get_data_info(i) for i in range(len(built))]
    return [(Path(e["img_path"]).name, Path(e["seg_map_path"]).name) for e in entries]


def checked(overrides: list[str]) -> Config:
    """The config `overrides` make, after the checks before training passed."""
    mm = export_config([*CUSTOM, *overrides])
    check_before_training(mm)
    return mm


def test_png_images_are_found_and_used(capsys, tmp_path):
    root = ade20k_folder(tmp_path / "data", img_suffix=".png", seg_map_suffix=".bmp")
    mm = checked([f"dataset.data_root={root}"])
    dataset = mm.train_dataloader.dataset
    assert (dataset.img_suffix, dataset.seg_map_suffix) == (".png", ".bmp")
    assert listed(dataset) == [("0.png", "0.bmp"), ("1.png", "1.bmp")]
    assert "seglab: warning" not in capsys.readouterr().err


def test_the_values_found_are_shown_by_cfg_job_resolve(capsys, tmp_path):
    from omegaconf import OmegaConf

    from seglab.cli import main

    root = ade20k_folder(tmp_path / "data", size=(40, 56), img_suffix=".png")
    main(["--cfg", "job", "--resolve", *CUSTOM, f"dataset.data_root={root}"])
    shown = OmegaConf.create(capsys.readouterr().out).dataset
    assert (shown.img_suffix, shown.crop_size, shown.scale) == (".png", [40, 56], [56, 40])


def test_labels_named_after_their_image_with_an_ending_of_their_own(tmp_path):
    root = ade20k_folder(tmp_path / "data", seg_map_suffix="_mask.png")
    mm = checked([f"dataset.data_root={root}"])
    assert listed(mm.val_dataloader.dataset) == [("0.jpg", "0_mask.png"), ("1.jpg", "1_mask.png")]


@pytest.mark.parametrize("case", ["set", "mixed"])
def test_no_image_with_the_suffix_names_the_endings_found(capsys, tmp_path, case):
    root = ade20k_folder(tmp_path / "data", img_suffix=".png")
    args = [*CUSTOM, f"dataset.data_root={root}"]
    if case == "set":
        args.append("dataset.img_suffix=.jpg")
    else:  # two kinds of image: none is picked
        ade20k_folder(root, n=1, img_suffix=".tif")
        (root / "images" / "training" / "1.png").unlink()
    line = error_line(args, capsys)
    assert "no images ending in '.jpg' in" in line and str(root / "images") in line
    found = "2 '.png' files" if case == "set" else "1 '.png' file, 1 '.tif' file"
    assert found in line and "set dataset.img_suffix=.png" in line, line


def test_labels_with_another_ending_name_the_endings_found(capsys, tmp_path):
    root = ade20k_folder(tmp_path / "data", seg_map_suffix=".bmp")
    line = error_line([*CUSTOM, f"dataset.data_root={root}", "dataset.seg_map_suffix=.png"], capsys)
    assert "2 of 2 images have no label" in line and "'.png'" in line
    assert "holds 2 '.bmp' files: set dataset.seg_map_suffix=.bmp" in line, line


@pytest.mark.parametrize(
    ("size", "crop", "scale"),
    [((48, 80), (48, 80), (80, 48)), ((1200, 2600), (512, 512), (2048, 945))],
)
def test_crop_and_scale_come_from_the_images(tmp_path, size, crop, scale):
    root = ade20k_folder(tmp_path / "data", n=1, size=size)
    mm = export_config([*CUSTOM, f"dataset.data_root={root}"])
    pipeline = mm.train_dataloader.dataset.pipeline
    resize, random_crop = pipeline[2], pipeline[3]
    assert (resize["type"], random_crop["type"]) == ("RandomResize", "RandomCrop")
    assert random_crop["crop_size"] == crop and resize["scale"] == scale


def test_crop_and_scale_set_by_the_user_are_kept(tmp_path):
    root = ade20k_folder(tmp_path / "data", n=1, size=48)
    mm = export_config(
        [*CUSTOM, f"dataset.data_root={root}", "dataset.crop_size=[40,40]", "dataset.scale=[60,50]"]
    )
    pipeline = mm.train_dataloader.dataset.pipeline
    assert pipeline[3]["crop_size"] == (40, 40) and pipeline[2]["scale"] == (60, 50)


def test_crop_far_beyond_the_images_is_a_warning_line(capsys, tmp_path):
    root = ade20k_folder(tmp_path / "data", size=32)
    checked([f"dataset.data_root={root}", "dataset.crop_size=[96,64]"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("seglab: warning: dataset.crop_size=[96, 64]: over 2x")
    assert "(at most 32x32)" in lines[0]


def test_mmseg_img_dir_ann_dir_layout(tmp_path):
    root = mmseg_folder(tmp_path / "data", n=3)
    mm = checked([f"dataset.data_root={root}", *MMSEG_LAYOUT])
    assert listed(mm.train_dataloader.dataset) == [
        (f"train_{i}.jpg", f"train_{i}.png") for i in range(3)
    ]
    assert listed(mm.test_dataloader.dataset) == [
        (f"val_{i}.jpg", f"val_{i}.png") for i in range(3)
    ]


def test_mmseg_layout_without_its_overrides_is_one_line_naming_them(capsys, tmp_path):
    """The suggested overrides, applied as written, pass every check before training."""
    root = mmseg_folder(tmp_path / "data", n=3)
    line = error_line([*CUSTOM, f"dataset.data_root={root}"], capsys)
    suggested = line.split("it holds another layout: set ", 1)[1].split()
    assert suggested == MMSEG_LAYOUT, line
    mm = checked([f"dataset.data_root={root}", *suggested])
    assert len(listed(mm.train_dataloader.dataset)) == 3


def test_split_files_pick_each_splits_images(tmp_path):
    root = mmseg_folder(tmp_path / "data", split_files=True)
    mm = checked(
        [
            f"dataset.data_root={root}",
            *MMSEG_LAYOUT[:2],
            "dataset.train_split=''",
            "dataset.val_split=''",
            "dataset.train_ann_file=splits/train.txt",
            "dataset.val_ann_file=splits/val.txt",
        ]
    )
    assert listed(mm.train_dataloader.dataset) == [
        ("train_0.jpg", "train_0.png"),
        ("train_1.jpg", "train_1.png"),
    ]
    assert listed(mm.val_dataloader.dataset) == [
        ("val_0.jpg", "val_0.png"),
        ("val_1.jpg", "val_1.png"),
    ]


def test_a_split_file_that_is_missing_is_named(capsys, tmp_path):
    root = mmseg_folder(tmp_path / "data", split_files=True)
    args = [
        *CUSTOM,
        f"dataset.data_root={root}",
        *MMSEG_LAYOUT[:2],
        "dataset.train_split=''",
        "dataset.val_split=''",
    ]
    line = error_line([*args, "dataset.train_ann_file=splits/training.txt"], capsys)
    assert "train_dataloader.dataset.ann_file='splits/training.txt'" in line
    assert str(root / "splits" / "training.txt") in line and "does not exist" in line


@pytest.mark.train
def test_classes_without_a_palette_train_with_generated_colours(tmp_path):
    """Three classes named, no colours: mmseg's dataset draws one per class (it had been a
    refusal: the default palette held two)."""
    root = ade20k_folder(tmp_path / "data", n=2, size=32, labels=[0, 1, 2], img_suffix=".png")
    run_dir = train(
        [
            *CUSTOM,
            f"dataset.data_root={root}",
            "dataset.classes=[road,car,person]",
            "train_dataloader.batch_size=2",
            "loader.num_workers=0",
            "train_cfg.max_iters=2",
            "train_cfg.val_interval=2",
            "default_hooks.checkpoint.interval=2",
        ]
    )
    from seglab.checkpoint_loading import load_local_checkpoint

    meta = load_local_checkpoint(str(run_dir / "iter_2.pth"))["meta"]["dataset_meta"]
    assert list(meta["classes"]) == ["road", "car", "person"] and len(meta["palette"]) == 3


def test_a_palette_of_another_length_suggests_the_generated_one(capsys, tmp_path):
    root = ade20k_folder(tmp_path / "data", n=2, size=32, labels=[0, 1, 2], img_suffix=".png")
    args = [*CUSTOM, f"dataset.data_root={root}", "dataset.classes=[road,car,person]"]
    line = error_line([*args, "dataset.palette=[[0,0,0],[1,1,1]]"], capsys)
    assert "2 colours for 3 classes" in line and "dataset.palette=[] for mmseg's" in line
    check_before_training(export_config([*args, "dataset.palette=[]"]))


@pytest.mark.train
def test_png_folder_trains_at_its_own_size(capsys, tmp_path):
    """The README's command on a folder of 32-pixel `.png` images, two iterations."""
    root = ade20k_folder(tmp_path / "data", n=2, size=32, img_suffix=".png")
    run_dir = train(
        [
            *CUSTOM,
            f"dataset.data_root={root}",
            "dataset.classes=[background,road]",
            "dataset.palette=[[0,0,0],[128,64,128]]",
            "train_dataloader.batch_size=2",
            "train_dataloader.num_workers=0",
            "train_dataloader.persistent_workers=false",
            "val_dataloader.num_workers=0",
            "val_dataloader.persistent_workers=false",
            "train_cfg.max_iters=2",
            "train_cfg.val_interval=2",
            "default_hooks.checkpoint.interval=2",
        ]
    )
    assert (run_dir / "iter_2.pth").is_file()
    exported = Config.fromfile(str(run_dir / "config.py"))
    assert exported.train_dataloader.dataset.img_suffix == ".png"
    assert exported.train_dataloader.dataset.pipeline[3]["crop_size"] == (32, 32)
    assert "seglab: warning" not in capsys.readouterr().err


def test_a_mistyped_data_root_names_the_folder_meant(capsys, tmp_path):
    root = ade20k_folder(tmp_path / "roads")
    line = error_line([*CUSTOM, f"dataset.data_root={tmp_path / 'road'}"], capsys)
    assert line.endswith(f"did you mean dataset.data_root={root}?"), line
    checked([f"dataset.data_root={root}"])


def test_a_file_named_like_an_image_folder_is_no_layout(capsys, tmp_path):
    """A file `img_dir` beside the real image folder (a download cut short, a note): the look
    for another layout passes over it, not a NotADirectoryError."""
    root = mmseg_folder(tmp_path / "data", n=2)
    (root / "img_dir").rename(root / "images")
    (root / "img_dir").write_text("not a folder\n")
    line = error_line([*CUSTOM, f"dataset.data_root={root}"], capsys)
    assert line.endswith(
        "set dataset.img_dir=images dataset.ann_dir=ann_dir dataset.train_split=train "
        "dataset.val_split=val"
    ), line
