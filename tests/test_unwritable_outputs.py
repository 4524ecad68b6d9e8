"""Outputs on a file system that cannot take them (read-only, full): one `seglab: error:` line
naming the path, the reason and what to do, before any work is spent where that can be known
beforehand (a sweep's directory, `show_dir=`, `out=`); a disk that fills while training names
the file and the checkpoint `resume=true` continues from once there is space.

The file systems are real: tmpfs mounts, read-only or of a few KiB (root, which chmod does not
stop, writes everywhere else). Without root, or where mount fails, the tests are skipped."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from seglab.cli import main
from seglab.run_dirs.resume import resume_checkpoint
from tests.helpers.commands import SMALL_SYNTHETIC, TRAINED_RUN, error_line
from tests.test_evaluate import validation_images


@contextlib.contextmanager
def tmpfs(path: Path, *options: str) -> Iterator[Path]:
    """A tmpfs mounted at `path` (made if missing) with mount's `options`, unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode:
        pytest.skip(f"mount -t tmpfs failed here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(path)], check=True)  # a file still open


def read_only(path: Path) -> contextlib.AbstractContextManager[Path]:
    return tmpfs(path, "size=1m", "ro")


def fill(folder: Path) -> None:
    """Write into `folder` until its file system is full."""
    filler = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with pytest.raises(OSError) as full:
            while True:
                os.write(filler, b"\0" * 4096)
        assert full.value.errno == errno.ENOSPC
    finally:
        os.close(filler)


def built(*args, **kwargs):
    raise AssertionError("the model was built: the check came too late")


def test_a_sweep_into_a_read_only_outputs_is_one_line(capsys):
    args = ["-m", "experiment=demo", *SMALL_SYNTHETIC, "optim_wrapper.optimizer.lr=0.1,0.2"]
    with read_only(Path("outputs")):
        line = error_line(args, capsys)
    assert "outputs/sweeps/" in line
    assert "Read-only file system, EROFS" in line
    assert "start seglab in another directory" in line


@pytest.mark.train
def test_test_with_a_show_dir_it_cannot_write_is_one_line_before_the_runner(
    trained_run_copy, capsys, monkeypatch
):
    monkeypatch.setattr("seglab.evaluate.SeglabRunner.from_cfg", built)
    test = ["test", f"run_dir={trained_run_copy}"]
    with read_only(Path("readonly").resolve()) as folder:
        for show_dir in (folder, folder / "shown"):
            line = error_line([*test, f"show_dir={show_dir}"], capsys, trained=True)
            assert f"show_dir='{show_dir}': cannot be written" in line
            assert "Read-only file system, EROFS" in line and "choose a folder" in line
        assert not (folder / "shown").exists()
    with tmpfs(Path("full").resolve(), "size=64k") as folder:
        fill(folder)
        line = error_line([*test, f"show_dir={folder / 'shown'}"], capsys, trained=True)
        assert f"show_dir='{folder / 'shown'}': cannot be written" in line
        assert "No space left on device, ENOSPC" in line
        assert sorted(p.name for p in folder.iterdir()) == ["filler"], "no probe left behind"


@pytest.mark.train
def test_infer_into_an_out_it_cannot_write_is_one_line_before_the_model(
    trained_run, capsys, monkeypatch
):
    monkeypatch.setattr("seglab.evaluate.checked_inferencer", built)
    infer = ["infer", f"checkpoint={trained_run / 'iter_20.pth'}", f"image={validation_images()}"]
    with read_only(Path("readonly")) as folder:
        for out in (folder, folder / "segmented"):
            line = error_line([*infer, f"out={out}"], capsys, trained=True)
            assert f"out='{out}': cannot be written" in line
            assert "Read-only file system, EROFS" in line
    with tmpfs(Path("full"), "size=64k") as folder:
        fill(folder)
        line = error_line([*infer, f"out={folder}"], capsys, trained=True)
        assert f"out='{folder}': cannot be written" in line
        assert "No space left on device, ENOSPC" in line


@pytest.mark.train
def test_a_disk_that_fills_while_training_is_one_line_and_resume_continues(capsys):
    """Room for the checkpoint at iteration 10 (15 MB) but not for the one at 20."""
    with tmpfs(Path("outputs"), "size=24m") as outputs:
        line = error_line(TRAINED_RUN, capsys, trained=True)
        (run_dir,) = (outputs / "runs").iterdir()
        assert f"{run_dir.resolve() / 'iter_20.pth'}: No space left on device, ENOSPC" in line
        assert "iter_10.pth, the run's newest intact checkpoint, is kept" in line
        assert f"resume=true continues {run_dir.resolve()} from iter_10.pth" in line
        checkpoint, _ = resume_checkpoint(run_dir)
        assert checkpoint.name == "iter_10.pth", "what the line promises"
        # once there is space, the line's command continues the run to its end
        subprocess.run(["mount", "-o", "remount,size=64m", str(outputs)], check=True)
        main([*TRAINED_RUN, "resume=true"])
        assert json.loads((run_dir / "metrics.json").read_text())["iter"] == 20
