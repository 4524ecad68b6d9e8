"""Running `seglab` from a test: in this process (as `seglab.cli.main`) or as a process of its
own, and the overrides that keep a run to seconds on a CPU."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from seglab.cli import main

REPO = Path(__file__).resolve().parents[2]

# a synthetic data set of 16 + 4 images of 64 pixels, loaded in the training process
SMALL_SYNTHETIC = [
    "dataset.synthetic.num_train=16",
    "dataset.synthetic.num_val=4",
    "dataset.synthetic.image_size=64",
    "train_dataloader.batch_size=4",
    "train_dataloader.num_workers=0",
    "train_dataloader.persistent_workers=false",
    "val_dataloader.num_workers=0",
    "val_dataloader.persistent_workers=false",
]
# 20 iterations with a validation and a checkpoint at 10 and 20
FEW_ITERS = [
    "train_cfg.max_iters=20",
    "train_cfg.val_interval=10",
    "default_hooks.checkpoint.interval=10",
    "default_hooks.logger.interval=5",
]
# the run of the session's `trained_run` fixture (tests/conftest.py)
TRAINED_RUN = ["experiment=demo", *SMALL_SYNTHETIC, *FEW_ITERS]
# a sweep job: 4 iterations of the demo model, a checkpoint at 2 and 4
QUICK = [
    "experiment=demo",
    *SMALL_SYNTHETIC,
    "train_cfg.max_iters=4",
    "train_cfg.val_interval=4",
    "default_hooks.checkpoint.interval=2",
]

# any zoo experiment in seconds (with `dataset=synthetic` picked): 32 px crops of the synthetic
# data, 2 iterations of batch 2, a validation on its 4 images at the end, a loss at each
# iteration, no checkpoint
ZOO_SHORT_RUN = [
    "dataset=synthetic",
    *SMALL_SYNTHETIC,
    "train_dataloader.batch_size=2",
    "dataset.crop_size=[32,32]",
    "train_cfg.max_iters=2",
    "train_cfg.val_interval=2",
    "default_hooks.logger.interval=1",
    "default_hooks.checkpoint.interval=1000",
    "++default_hooks.checkpoint.save_last=false",
]


def train(args: list[str]) -> Path:
    """Run `seglab ARGS` here; return the run directory it wrote under outputs/runs."""
    runs = Path("outputs/runs")
    before = set(runs.glob("*")) if runs.exists() else set()
    main(args)
    (run_dir,) = set(runs.glob("*")) - before
    return run_dir


def sweep(args: list[str]) -> tuple[int, dict]:
    """Run `seglab -m ARGS` here; return its exit code and the sweep's summary."""
    code = 0
    try:
        main(["-m", *args])
    except SystemExit as exit_:
        code = exit_.code
    (summary,) = Path("outputs/sweeps").glob("*/summary.json")
    return code, json.loads(summary.read_text())


def job(summary: dict, override: str) -> dict:
    """The one job of a sweep summary whose overrides hold `override`."""
    (found,) = [j for j in summary["jobs"] if override in j["overrides"]]
    return found


def error_line(args: list[str], capsys, trained: bool = False) -> str:
    """Run `seglab ARGS` here; it must stop with exit code 2 and print one `seglab: error:`
    line, which is returned. Unless `trained`, no checkpoint may exist afterwards."""
    capsys.readouterr()  # what the test printed before
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("seglab: error: ")
    if not trained:
        assert not list(Path.cwd().glob("outputs/**/*.pth")), "no training may start"
    return lines[0]


def seglab_process(args: list[str]) -> subprocess.Popen:
    """`python -m seglab ARGS` started in the working directory, its output as text."""
    return subprocess.Popen(
        [sys.executable, "-m", "seglab", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)},
    )


def run_seglab(
    args: list[str],
    memory_limit: int | None = None,
    cpus: set[int] | None = None,
    timeout: int = 300,
) -> subprocess.CompletedProcess:
    """`python -m seglab ARGS` to its end (under an address-space limit, on the given CPUs)."""

    def limit() -> None:
        if memory_limit:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
        if cpus:
            os.sched_setaffinity(0, cpus)

    return subprocess.run(
        [sys.executable, "-m", "seglab", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=timeout,
        preexec_fn=limit,
    )


def last_error_line(result: subprocess.CompletedProcess) -> str:
    """The `seglab: error:` line a process ended with (exit code 2, no traceback)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert lines[-1].startswith("seglab: error: "), lines[-5:]
    return lines[-1]
