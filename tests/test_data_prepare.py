"""`seglab data prepare NAME SOURCE`: mmseg's converters on tiny downloads made in each data
set's own format (tests/helpers/public_datasets.py), run as the README's section "Getting a
public data set" writes them; the layout each `dataset=` option reads, SOURCE unchanged, a run
again kept, and training on four of them."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.cli import main
from seglab.data import recipes
from seglab.data.prepare import MARKER, check_packages, data_root, recipe_for
from seglab.errors import ConfigError
from tests.helpers.commands import REPO, error_line, train
from tests.helpers.public_datasets import BUILDERS, cityscapes, write_zip

# per data set: files the option's dataloaders read (relative to OUT), the images of each split
# listed (train, [aug,] val) and one label's values
LAYOUT = {
    "cityscapes": (
        [
            "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png",
            "gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png",
            "leftImg8bit/val/lindau/lindau_000000_000019_leftImg8bit.png",
            "gtFine/val/lindau/lindau_000000_000019_gtFine_labelTrainIds.png",
            "train.txt",
        ],
        [3, 2],
        ("gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png", {0, 2, 10, 13, 255}),
    ),
    "pascal_voc12_aug": (
        [
            "JPEGImages/2008_000007.jpg",
            "SegmentationClass/2007_000033.png",
            "SegmentationClassAug/2008_000002.png",
            "ImageSets/Segmentation/aug.txt",
            "ImageSets/Segmentation/trainaug.txt",
        ],
        [2, 3, 1],
        ("SegmentationClassAug/2008_000002.png", {0, 7, 12, 15}),
    ),
    "loveda": (
        ["img_dir/train/0.png", "ann_dir/train/3.png", "ann_dir/val/5.png", "img_dir/test/7.png"],
        [4, 2],
        ("ann_dir/train/0.png", set(range(8))),
    ),
    "drive": (
        ["images/training/21.png", "annotations/training/21_manual1.png"]
        + ["images/validation/01.png", "annotations/validation/01_manual1.png"],
        [3, 2],
        ("annotations/training/22_manual1.png", {0, 1}),
    ),
    "chase_db1": (
        ["images/training/Image_01L.png", "annotations/training/Image_10R_1stHO.png"]
        + ["images/validation/Image_14R.png", "annotations/validation/Image_14R_1stHO.png"],
        [20, 8],
        ("annotations/training/Image_01L_1stHO.png", {0, 1}),
    ),
    "hrf": (
        ["images/training/05_g.png", "annotations/training/05_g.png"]
        + ["images/validation/15_dr.png", "annotations/validation/15_dr.png"],
        [15, 30],
        ("annotations/training/01_h.png", {0, 1}),
    ),
    "stare": (
        ["images/training/im0082.png", "annotations/training/im0082.ah.png"]
        + ["images/validation/im0324.png", "annotations/validation/im0324.ah.png"],
        [10, 10],
        ("annotations/training/im0001.ah.png", {0, 1}),
    ),
    "potsdam": (
        ["img_dir/train/2_10_0_0_512_512.png", "ann_dir/val/2_13_0_0_512_512.png"],
        [1, 1],
        ("ann_dir/train/2_10_0_0_512_512.png", {1, 2, 3, 4, 5, 6}),
    ),
    "vaihingen": (
        ["img_dir/train/area1_0_0_512_512.png", "ann_dir/val/area6_0_0_512_512.png"],
        [1, 1],
        ("ann_dir/train/area1_0_0_512_512.png", {1, 2, 3, 4, 5, 6}),
    ),
    "coco-stuff10k": (
        ["images/train2014/COCO_train2014_000000000077.jpg"]
        + ["annotations/test2014/COCO_train2014_000000002102_labelTrainIds.png"],
        [3, 2],
        ("annotations/train2014/COCO_train2014_000000000133_labelTrainIds.png", {0, 1, 3, 79, 171}),
    ),
    "coco-stuff164k": (
        ["images/train2017/000000000009.jpg", "annotations/val2017/000000000285_labelTrainIds.png"],
        [3, 2],
        ("annotations/train2017/000000000025_labelTrainIds.png", {0, 2, 79, 170, 255}),
    ),
    "isaid": (
        ["img_dir/train/P0001_0_896_0_896.png", "img_dir/test/P0006.png"]
        + ["ann_dir/val/P0003_0_896_0_896_instance_color_RGB.png"],
        [2, 1],
        # the classes' colours as indices, 255 where the converter padded to 896 pixels
        ("ann_dir/train/P0000_0_896_0_896_instance_color_RGB.png", {0, 1, 2, 3, 9, 255}),
    ),
}
TRAINED = ("cityscapes", "pascal_voc12_aug", "loveda", "drive")
# 2 iterations of the demo model in 32-pixel crops of the 64x32 images, a validation at the end
SHORT_RUN = [
    "experiment=demo",
    "dataset.crop_size=[32,32]",
    "dataset.scale=[64,32]",
    "train_cfg.max_iters=2",
    "train_cfg.val_interval=2",
    "train_dataloader.batch_size=2",
    "train_dataloader.num_workers=0",
    "train_dataloader.persistent_workers=false",
    "val_dataloader.num_workers=0",
    "val_dataloader.persistent_workers=false",
    "default_hooks.logger.interval=1",
    "default_hooks.checkpoint.interval=1000",
    "++default_hooks.checkpoint.save_last=false",
]


def readme_commands() -> dict[str, list[str]]:
    """The `seglab data prepare` lines of the README's section, by data set: the arguments
    after `seglab`."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Getting a public data set", 1)[1].split("\n## ", 1)[0]
    lines = [line.split("#")[0] for line in section.splitlines()]
    commands = [shlex.split(line)[1:] for line in lines if line.startswith("seglab data prepare ")]
    return {args[2]: args for args in commands}


COMMANDS = readme_commands()


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")}


def prepare(args: list[str], source: Path, capsys) -> tuple[Path, str]:
    """Run a README command on the tiny downloads at SOURCE; (OUT, what it printed, warnings
    too)."""
    name, options = args[2], [a for a in args[4:] if not a.startswith("out=")]
    out = Path(data_root(name)).resolve()
    for given in [a.split("=", 1)[1] for a in args[4:] if a.startswith("out=")]:
        out = Path.cwd() / "elsewhere" / Path(given).name  # an absolute folder: under the test's
        options.append(f"out={out}")
    capsys.readouterr()
    main([*args[:3], str(source), *options])
    printed = capsys.readouterr()
    return out, printed.out + printed.err


def test_the_readme_names_every_data_set_prepared_and_built_here():
    assert list(COMMANDS) == list(recipes.RECIPES) == list(BUILDERS) == list(LAYOUT)
    assert set(TRAINED) <= set(COMMANDS)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_readme_command_writes_the_layout_and_a_rerun_keeps_it(name, capsys, tmp_path):
    source = BUILDERS[name](tmp_path / "downloads")
    before = tree(source)
    out, printed = prepare(COMMANDS[name], source, capsys)
    files, counts, (label, values) = LAYOUT[name]
    for file in files:
        assert (out / file).is_file(), file
    assert set(np.unique(np.asarray(Image.open(out / label)))) == values
    listed = re.findall(r"(\d+) images, (\d+) labels", printed)
    assert [(str(n), str(n)) for n in counts] == listed, printed
    assert f"train on it: python -m seglab dataset={name} dataset.data_root={out}" in printed
    # the converters run with -O say what their assert on the full download's count would
    assert ("incomplete or a subset" in printed) == recipes.RECIPES[name].optimize, printed
    assert (out / MARKER).is_file()
    assert not out.with_name(out.name + ".partial").exists()
    assert not (out / ".seglab-scratch").exists()
    assert tree(source) == before  # SOURCE unchanged: the same files, sizes and times

    written = tree(out)
    _, again = prepare(COMMANDS[name], source, capsys)
    assert "kept" in again and "running" not in again
    assert tree(out) == written


@pytest.mark.train
@pytest.mark.parametrize("name", TRAINED)
def test_the_printed_command_trains_on_the_prepared_data(name, capsys, tmp_path):
    out, printed = prepare(COMMANDS[name], BUILDERS[name](tmp_path / "downloads"), capsys)
    command = printed.split("train on it: ", 1)[1].splitlines()[0]
    args = shlex.split(command)
    assert args[:3] == ["python", "-m", "seglab"]
    run_dir = train([*args[3:], *SHORT_RUN])
    config = (run_dir / "config.py").read_text()
    assert f"data_root='{out}'" in config  # the prepared data, not the demo's
    metrics = json.loads((run_dir / "metrics.json").read_text())
    score = metrics.get("mIoU", metrics.get("mDice"))  # DRIVE's evaluator: mDice
    assert metrics["iter"] == 2 and score is not None and 0 <= score <= 100, metrics


def test_cityscapes_from_its_two_zips(capsys, tmp_path):
    source = cityscapes(tmp_path / "downloads")
    zipped = cityscapes(tmp_path / "zips", zipped=True)  # the same files, in their two zips
    out = tmp_path / "out"
    main(["data", "prepare", "cityscapes", str(zipped), f"out={out}", "workers=1"])
    folders = tmp_path / "from_folders"
    main(["data", "prepare", "cityscapes", str(source), f"out={folders}", "workers=1"])
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert names == sorted(str(p.relative_to(folders)) for p in folders.rglob("*.png"))
    assert not (out / "license.txt").exists()


def test_a_half_written_partial_folder_is_redone(capsys, tmp_path):
    source = BUILDERS["loveda"](tmp_path / "downloads")
    out = tmp_path / "loveda"
    partial = tmp_path / "loveda.partial"
    (partial / "img_dir" / "train").mkdir(parents=True)
    (partial / "img_dir" / "train" / "stale.png").write_bytes(b"a stopped run")
    main(["data", "prepare", "loveda", str(source), f"out={out}"])
    assert not partial.exists() and not (out / "img_dir" / "train" / "stale.png").exists()
    assert (out / MARKER).is_file() and len(list((out / "img_dir" / "train").iterdir())) == 4


def test_an_out_folder_holding_other_files_is_refused(capsys, tmp_path):
    source = BUILDERS["drive"](tmp_path / "downloads")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    line = error_line(["data", "prepare", "drive", str(source), f"out={out}"], capsys)
    assert "holds files seglab did not write" in line
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert not (tmp_path / "mine.partial").exists()


def test_an_out_folder_prepared_from_other_downloads_is_refused(capsys, tmp_path):
    source = BUILDERS["drive"](tmp_path / "downloads")
    out = tmp_path / "out"
    main(["data", "prepare", "drive", str(source), f"out={out}"])
    other = BUILDERS["drive"](tmp_path / "other")
    line = error_line(["data", "prepare", "drive", str(other), f"out={out}"], capsys)
    assert f"holds drive prepared from {source}" in line


def test_a_missing_package_is_named_with_its_pip_command(capsys, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="^no_such_module_here is not installed: pip install "):
        check_packages({"no_such_module_here": "no-such-module-here"})
    missing = {"no_such_module_here": "no-such-module-here"}
    cityscapes = dataclasses.replace(recipes.RECIPES["cityscapes"], packages=missing)
    monkeypatch.setitem(recipes.RECIPES, "cityscapes", cityscapes)
    source = BUILDERS["cityscapes"](tmp_path / "downloads")
    args = ["data", "prepare", "cityscapes", str(source), f"out={tmp_path / 'out'}"]
    line = error_line(args, capsys)
    assert line.endswith("no_such_module_here is not installed: pip install no-such-module-here")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_the_converters_own_packages_are_installed_here():
    for recipe in recipes.RECIPES.values():
        check_packages(recipe.packages)


def test_an_unknown_name_lists_the_supported_ones(capsys, tmp_path):
    line = error_line(["data", "prepare", "coco", str(tmp_path / "nowhere")], capsys)
    assert line.endswith("supported: " + ", ".join(recipes.RECIPES))
    line = error_line(["data", "prepare", "ade20k", str(tmp_path)], capsys)
    assert "ADEChallengeData2016.zip" in line
    assert recipe_for("cityscapes_768x768") is recipes.RECIPES["cityscapes"]


def test_missing_downloads_are_named(capsys, tmp_path):
    line = error_line(["data", "prepare", "loveda", str(tmp_path / "nowhere")], capsys)
    assert line.endswith("no such folder; expected the folder of loveda's downloads")
    (tmp_path / "Train.zip").write_bytes(b"")
    line = error_line(["data", "prepare", "loveda", str(tmp_path), "out=x"], capsys)
    assert "no Val.zip, Test.zip; expected loveda's downloads: Train.zip, Val.zip" in line


def test_out_inside_source_is_refused(capsys, tmp_path):
    source = BUILDERS["drive"](tmp_path / "downloads")
    line = error_line(["data", "prepare", "drive", str(source), f"out={source / 'x'}"], capsys)
    assert "which is never changed" in line


def test_a_converter_that_stops_is_one_line(capsys, tmp_path):
    write_zip(tmp_path / "CHASEDB1.zip", {"Image_01L.jpg": b"x"})  # not CHASE_DB1's 84 files
    line = error_line(["data", "prepare", "chase_db1", str(tmp_path), "out=out"], capsys)
    assert "mmseg's chase_db1.py stopped (exit 1): AssertionError: len(" in line
    assert "!= 84" in line and not Path("out").exists()


def test_a_voc_download_without_its_labels_is_named(capsys, tmp_path):
    source = BUILDERS["pascal_voc12_aug"](tmp_path / "downloads")
    shutil.rmtree(source / "benchmark_RELEASE" / "dataset" / "cls")
    line = error_line(["data", "prepare", "pascal_voc12_aug", str(source), "out=out"], capsys)
    assert f"no {source / 'benchmark_RELEASE' / 'dataset' / 'cls'}; expected" in line


@pytest.mark.parametrize("relative", [True, False])
def test_an_archive_member_outside_its_folder_is_not_written(capsys, tmp_path, relative):
    """stare.py extracts its tar files as they are: a crafted member (`../`, an absolute path)
    would be written anywhere the user may write (a shell start-up file: code run later)."""
    import tarfile

    escaped = tmp_path / "escaped.txt"
    # from the converter's temporary folder inside OUT.partial, up to / and down to tmp_path
    member = "../" * 40 + str(escaped).lstrip("/") if relative else str(escaped)
    source = BUILDERS["stare"](tmp_path / "downloads")
    with tarfile.open(source / "stare-images.tar", "a") as archive:
        info = tarfile.TarInfo(member)
        info.size = 5
        archive.addfile(info, io.BytesIO(b"owned"))
    out = tmp_path / "out"
    line = error_line(["data", "prepare", "stare", str(source), f"out={out}"], capsys)
    assert "mmseg's stare.py stopped (exit 1)" in line
    # `../`: refused; an absolute name: written inside the folder (its `/` dropped), where
    # stare.py then meets a folder among its images
    assert ("outside the destination" in line) if relative else ("Is a directory" in line)
    assert not escaped.exists() and not out.exists()
