"""Colour masks (labels drawn in their classes' colours) are refused before training with the
`seglab data palette` command that writes index masks, and that command's own behaviour."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.checks.before_training import check_before_training
from seglab.cli import main
from seglab.config.convert import export_config
from seglab.errors import ConfigError
from tests.helpers.commands import error_line
from tests.helpers.data import ade20k_folder
from tests.test_data_checks import QUICK

ROAD_CAR_SKY = [[128, 64, 128], [0, 0, 142], [70, 130, 180]]
CLASSES = ["dataset.classes=[road,car,sky]", f"dataset.palette={ROAD_CAR_SKY}".replace(" ", "")]


def colour_folder(root: Path, palette: list[list[int]], extra: list[int] | None = None) -> Path:
    """ade20k_folder with its labels (classes 0, 1, 2 in bands) saved as RGB colour masks; with
    `extra`, one pixel of each label in that colour."""
    ade20k_folder(root, labels=[0, 1, 2], n=2, size=32)
    for label in sorted((root / "annotations").rglob("*.png")):
        index = np.asarray(Image.open(label))
        rgb = np.asarray(palette, np.uint8)[index]
        if extra:
            rgb[0, 0] = extra
        Image.fromarray(rgb).save(label)
    return root


def tree(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p): (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}


def suggested(line: str) -> tuple[list[str], str]:
    """The `seglab data palette ...` command a line names (as arguments) and the setting after
    it."""
    command = line.split("`")[1]
    setting = line.rsplit("then set ", 1)[1]
    return shlex.split(command)[1:], setting


def test_colour_masks_in_the_palette_name_the_conversion_that_trains(capsys, tmp_path):
    root = colour_folder(tmp_path / "data", ROAD_CAR_SKY)
    args = [*QUICK, f"dataset.data_root={root}", *CLASSES]
    line = error_line(args, capsys)
    assert "is a 3-channel (RGB) colour image" in line and "in the data set's palette" in line
    command, setting = suggested(line)
    assert command[:2] == ["data", "palette"] and setting == "dataset.ann_dir=annotations_index"
    before = tree(root / "annotations")
    main(command)
    assert tree(root / "annotations") == before  # the colour masks are kept as they were
    check_before_training(export_config([*args, setting]))
    converted = np.asarray(Image.open(root / "annotations_index" / "training" / "0.png"))
    assert set(np.unique(converted)) == {0, 1, 2}


def test_colours_outside_the_palette_are_named(capsys, tmp_path):
    root = colour_folder(tmp_path / "data", ROAD_CAR_SKY, extra=[255, 0, 0])
    line = error_line([*QUICK, f"dataset.data_root={root}", *CLASSES], capsys)
    assert "[255, 0, 0] is no colour of the palette" in line
    assert "palette=[[R,G,B],...]` (one colour per class, in class order)" in line


def test_colour_masks_of_a_dataset_without_a_palette_ask_for_one(capsys, tmp_path):
    root = colour_folder(tmp_path / "data", ROAD_CAR_SKY)
    args = [*QUICK, f"dataset.data_root={root}", "dataset.classes=[road,car,sky]"]
    line = error_line(args, capsys)
    assert "a colour mask ([0, 0, 142], [70, 130, 180], [128, 64, 128])" in line
    command, setting = suggested(line)
    # the command as the user completes it: the colours in class order
    main([*command[:-1], "palette=" + str(ROAD_CAR_SKY).replace(" ", "")])
    check_before_training(export_config([*args, setting]))


def test_a_rerun_keeps_the_written_masks(capsys, tmp_path):
    root = colour_folder(tmp_path / "data", ROAD_CAR_SKY)
    out = tmp_path / "index"
    command = ["data", "palette", str(root / "annotations"), f"out={out}"]
    main([*command, "palette=[[128,64,128],[0,0,142],[70,130,180]]"])
    assert "label pixels per class 0:" in capsys.readouterr().out
    written = tree(out)
    main([*command, "palette=[[128,64,128],[0,0,142],[70,130,180]]"])
    assert "already written" in capsys.readouterr().out and tree(out) == written
    # a conversion that stopped half-way is redone, not kept
    (tmp_path / "index2.partial" / "training").mkdir(parents=True)
    main([*command[:3], f"out={tmp_path / 'index2'}", f"palette={ROAD_CAR_SKY}"])
    assert not (tmp_path / "index2.partial").exists()
    assert tree(tmp_path / "index2").keys() == {
        str(tmp_path / "index2" / p) for p in map(lambda k: Path(k).relative_to(out), written)
    }


def test_unknown_colours_stop_the_conversion_unless_ignored(capsys, tmp_path):
    root = colour_folder(tmp_path / "data", ROAD_CAR_SKY, extra=[255, 0, 0])
    out = tmp_path / "index"
    command = [
        "data",
        "palette",
        str(root / "annotations"),
        f"out={out}",
        f"palette={ROAD_CAR_SKY}",
    ]
    line = error_line(command, capsys)
    assert "1 pixels of colour [255,0,0], which is no colour of the palette" in line
    assert not out.exists()
    main([*command, "unknown=255"])
    label = np.asarray(Image.open(out / "training" / "0.png"))
    assert label[0, 0] == 255 and set(np.unique(label)) == {0, 1, 2, 255}


@pytest.mark.parametrize(
    "out, expected",
    [("annotations/index", "inside"), ("existing", "holds files seglab did not write")],
)
def test_an_out_folder_that_would_lose_files_is_refused(capsys, tmp_path, out, expected):
    root = colour_folder(tmp_path / "data", ROAD_CAR_SKY)
    (root / "existing").mkdir()
    (root / "existing" / "mine.txt").write_text("kept")
    line = error_line(
        ["data", "palette", str(root / "annotations"), f"out={root / out}", "palette=[[0,0,0]]"],
        capsys,
    )
    assert expected in line
    assert (root / "existing" / "mine.txt").read_text() == "kept"


def test_a_palette_by_dataset_name_is_mmseg_s(tmp_path):
    from mmseg.datasets import CityscapesDataset

    from seglab.data.palette import read_palette

    expected = [tuple(c) for c in CityscapesDataset.METAINFO["palette"]]
    assert read_palette("CityscapesDataset") == expected == read_palette("cityscapes")
    with pytest.raises(ConfigError, match=r"palette=\[\[0,0\]\]: expected one \[r,g,b\]"):
        read_palette("[[0,0]]")


def readme_commands(heading: str) -> list[list[str]]:
    """The commands of the first bash block under README's `heading`, as arguments."""
    from tests.helpers.commands import REPO

    text = (REPO / "README.md").read_text().split(f"\n{heading}\n", 1)[1]
    block = text.split("```bash\n", 1)[1].split("\n```", 1)[0]
    return [shlex.split(line) for line in block.replace("\\\n", " ").splitlines() if line]


def test_the_readme_s_conversion_and_its_setting(capsys, tmp_path):
    root = tmp_path / "roads"
    ade20k_folder(root, n=2, size=32)  # classes 0 and 1 in bands
    for label in sorted((root / "annotations").rglob("*.png")):
        index = np.asarray(Image.open(label))
        Image.fromarray(np.asarray([[0, 0, 0], [128, 64, 128]], np.uint8)[index]).save(label)
    palette, training = (
        [arg.replace("/data/roads", str(root)) for arg in command]
        for command in readme_commands("### Colour masks")
    )
    assert palette[:3] == ["seglab", "data", "palette"]
    args = [*training[3:], *QUICK[2:]]
    assert "seglab data palette" in error_line(
        [a for a in args if not a.startswith("dataset.ann_dir")], capsys
    )
    main(palette[1:])
    check_before_training(export_config(args))
