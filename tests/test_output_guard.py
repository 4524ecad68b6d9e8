"""`seglab infer` and `seglab test show_dir=` never write over their inputs or over a file they did
not write (`seglab infer image=photos out=photos` once replaced the user's PNGs with overlays);
run again, they replace their own earlier outputs."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from mmengine.config import Config
from PIL import Image

from seglab.cli import main
from tests.helpers.commands import error_line
from tests.test_evaluate import validation_images


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def photos() -> Path:
    """The user's photos: the trained run's validation images as PNGs, the file type that an
    overlay (STEM.png) replaces."""
    folder = Path("photos")
    folder.mkdir()
    for image in validation_images().glob("*.jpg"):
        Image.open(image).save(folder / f"{image.stem}.png")
    return folder


def infer(trained_run: Path, *options: str) -> list[str]:
    return ["infer", f"checkpoint={trained_run / 'iter_20.pth'}", *options]


@pytest.mark.train
def test_infer_refuses_to_write_into_the_folder_it_reads(trained_run, photos, capsys):
    before = digests(photos)
    line = error_line(infer(trained_run, f"image={photos}", f"out={photos}"), capsys)
    assert "out='photos': is the folder of the images to segment" in line
    one = sorted(photos.iterdir())[0]
    line = error_line(infer(trained_run, f"image={one}", "out=photos/"), capsys)
    assert "is the folder of the images to segment" in line
    # the same folder by another path
    line = error_line(infer(trained_run, f"image={photos}", f"out={photos.resolve()}/."), capsys)
    assert "is the folder of the images to segment" in line
    assert digests(photos) == before, "the user's images are as they were"


@pytest.mark.train
def test_infer_replaces_its_own_outputs_and_nothing_else(trained_run, photos, capsys):
    out = Path("segmented")
    out.mkdir()
    stem = sorted(photos.iterdir())[0].stem
    users = out / f"{stem}_labels.png"
    users.write_bytes(b"the user's own file")
    (out / "notes.txt").write_text("a file no output is named after\n")
    line = error_line(infer(trained_run, f"image={photos}", f"out={out}"), capsys)
    assert f"out='segmented': {users} exists and seglab did not write it" in line
    assert users.read_bytes() == b"the user's own file"
    assert sorted(p.name for p in out.iterdir()) == [f"{stem}_labels.png", "notes.txt"]

    users.unlink()
    main(infer(trained_run, f"image={photos}", f"out={out}"))
    first = digests(out)
    main(infer(trained_run, f"image={photos}", f"out={out}"))  # run again: its own outputs
    assert digests(out).keys() == first.keys() and len(first) == 2 * 4 + 1  # and the notes
    # an output the user changed since is theirs now
    overlay = out / f"{stem}.png"
    overlay.write_bytes(b"edited")
    line = error_line(infer(trained_run, f"image={photos}", f"out={out}"), capsys)
    assert f"{overlay} exists and seglab did not write it (or it changed since" in line
    assert overlay.read_bytes() == b"edited"


@pytest.fixture
def own_data(trained_run) -> tuple[Path, str]:
    """A copy of the trained run's data set (its test split is its validation split), and the
    override that points the test at it: a test that would write into it writes there, not
    into the session's cache."""
    test_set = Config.fromfile(str(trained_run / "config.py")).test_dataloader.dataset
    copy = Path("data").resolve()
    shutil.copytree(test_set.data_root, copy)
    return copy / test_set.data_prefix.img_path, f"test_dataloader.dataset.data_root={copy}"


@pytest.mark.train
def test_test_refuses_a_show_dir_among_the_test_images(trained_run_copy, own_data, capsys):
    images, data_root = own_data
    before = digests(images)
    for show_dir in (images, images / "shown", images.parent.parent / "annotations" / "validation"):
        line = error_line(
            ["test", f"run_dir={trained_run_copy}", data_root, f"show_dir={show_dir}"],
            capsys,
            trained=True,
        )
        assert f"show_dir='{show_dir}': lies in " in line and "which the test set reads" in line
    assert digests(images) == before and not (images / "shown").exists()


@pytest.mark.train
def test_test_replaces_its_own_drawings_and_nothing_else(trained_run_copy, own_data, capsys):
    images, data_root = own_data
    shown = Path("shown")
    shown.mkdir()
    stem = sorted(images.iterdir())[0].stem
    users = shown / f"{stem}.png"
    users.write_bytes(b"the user's own drawing")
    args = ["test", f"run_dir={trained_run_copy}", data_root, f"show_dir={shown}"]
    line = error_line(args, capsys, trained=True)
    assert f"show_dir='{shown.resolve()}': {users.resolve()} exists and seglab did not" in line
    assert users.read_bytes() == b"the user's own drawing"
    assert [p.name for p in shown.iterdir()] == [users.name], "nothing drawn"

    users.unlink()
    main(args)
    main(args)  # run again: its own drawings
    assert len(list(shown.glob("*.png"))) == 4


@pytest.mark.train
def test_test_refuses_a_show_dir_in_any_data_set_the_run_reads(
    trained_run_copy, capsys, monkeypatch
):
    """The training and validation sets' folders and the data root too, not only the test set's:
    drawings among the training images would be trained on. Refused before the Runner is built
    (nothing is written into the session's data set even without the check)."""

    def built(*args, **kwargs):
        raise AssertionError("the Runner was built: the show_dir check came too late")

    monkeypatch.setattr("seglab.evaluate.SeglabRunner.from_cfg", built)
    train_set = Config.fromfile(str(trained_run_copy / "config.py")).train_dataloader.dataset
    root = Path(train_set.data_root)
    images = root / train_set.data_prefix.img_path
    before = digests(images)
    for show_dir, reader in (
        (images, "the training set reads (train_dataloader.dataset.data_prefix.img_path)"),
        (images / "shown", "the training set reads"),
        (root / train_set.data_prefix.seg_map_path, "the training set reads"),
        (root, "the test set reads (test_dataloader.dataset.data_root)"),
        (root / "overlays", "the test set reads (test_dataloader.dataset.data_root)"),
    ):
        line = error_line(
            ["test", f"run_dir={trained_run_copy}", f"show_dir={show_dir}"], capsys, trained=True
        )
        assert f"show_dir='{show_dir}': lies in " in line and reader in line, line
    assert digests(images) == before and not (images / "shown").exists()
