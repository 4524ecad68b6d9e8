"""A scheduler's SIGTERM to every process of a job saves the run: training, validation and a
checkpoint write in flight, with data loader workers, and a sweep whose jobs run in processes
of their own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers.commands import REPO, main
from tests.helpers.signals import seglab_in_own_group

EXIT_CODE = 128 + signal.SIGTERM
# the demo on a small synthetic set, with the two loader workers per loader upstream configs use
WITH_WORKERS = [
    "experiment=demo",
    "dataset.synthetic.num_train=16",
    "dataset.synthetic.num_val=12",
    "dataset.synthetic.image_size=64",
    "train_dataloader.batch_size=4",
    "train_dataloader.num_workers=2",
    "train_dataloader.persistent_workers=true",
    "val_dataloader.num_workers=2",
    "val_dataloader.persistent_workers=true",
    "train_cfg.max_iters=8",
    "train_cfg.val_interval=4",
    "default_hooks.checkpoint.interval=4",
    "default_hooks.logger.interval=1",
]


@pytest.mark.train
@pytest.mark.processes
@pytest.mark.parametrize(
    "moment, saved_at", [("training", 3), ("validation", 4), ("checkpoint", 4)]
)
def test_sigterm_to_the_whole_group_saves_and_exits_143(moment, saved_at):
    # no checkpoint is due when the validation is stopped: the one the signal saves counts
    no_periodic = [] if moment == "checkpoint" else ["default_hooks.checkpoint.interval=1000"]
    hook = f"+custom_hooks=[{{type:SignalGroupHook,moment:{moment}}}]"
    args = [*WITH_WORKERS, *no_periodic, hook]
    result = seglab_in_own_group(args)
    assert result.returncode == EXIT_CODE, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"seglab: SIGTERM: saved iter_{saved_at}.pth at iteration {saved_at}")
    assert f"during {'validation' if moment == 'validation' else 'training'}" in last
    assert "resume=true continues" in last
    (run_dir,) = Path("outputs/runs").iterdir()
    saved = Path((run_dir / "last_checkpoint").read_text().strip())
    assert saved.name == f"iter_{saved_at}.pth"
    checkpoint = torch.load(saved, map_location="cpu", weights_only=False)
    assert checkpoint["meta"]["iter"] == saved_at
    if moment == "validation":  # stopped after 3 of 12 batches, not at the validation's end
        (log,) = run_dir.glob("*/*.log")
        assert "Iter(val) [ 3/12]" in log.read_text()
        assert "Iter(val) [12/12]" not in log.read_text()
        assert not (run_dir / "metrics.json").exists()
        # the run continues from there, as the message says, with iteration 5, and
        # validates at its end
        main([*WITH_WORKERS, f"resume='{run_dir}'"])
        assert json.loads((run_dir / "metrics.json").read_text())["iter"] == 8
        (resumed,) = set(run_dir.glob("*/*.log")) - {log}
        assert "Iter(train) [5/8]" in resumed.read_text()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.train
@pytest.mark.processes
def test_sigterm_to_a_parallel_sweep_saves_every_job_and_leaves_no_process():
    """joblib's workers (hydra/launcher=cpu_parallel) get the signal from the sweep's main
    process, save, and nothing trains on after the sweep has exited."""
    args = [
        "-m",
        "hydra/launcher=cpu_parallel",
        "hydra.launcher.n_jobs=2",
        *WITH_WORKERS[:4],
        "train_dataloader.batch_size=4",
        "train_dataloader.num_workers=1",  # the main process passes SIGTERM to all it started
        "train_dataloader.persistent_workers=true",
        "val_dataloader.num_workers=0",
        "val_dataloader.persistent_workers=false",
        "train_cfg.max_iters=100000",
        "train_cfg.val_interval=100000",
        "default_hooks.checkpoint.interval=100000",
        "default_hooks.logger.interval=1",
        "optim_wrapper.optimizer.lr=0.001,0.002",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "seglab", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # both jobs are training
            logs = list(Path("outputs/sweeps").glob("*/*/*/*.log"))
            if len(logs) == 2 and all("Iter(train) [     2/" in p.read_text() for p in logs):
                break
            time.sleep(0.5)
        else:
            pytest.fail("the two jobs did not start training")
        process.send_signal(signal.SIGTERM)  # the main process only
        _, err = process.communicate(timeout=180)
        assert process.returncode == EXIT_CODE, err[-3000:]
        assert "the same command continues the sweep: python -m seglab -m " in err
        jobs = [p for p in Path("outputs/sweeps").glob("*/*") if p.is_dir()]
        assert len(jobs) == 2
        for job in jobs:
            saved = Path((job / "last_checkpoint").read_text().strip())
            assert saved.parent == job.resolve() and saved.is_file()
        time.sleep(5)  # joblib's workers notice their parent is gone
        assert not _group_alive(process.pid), "processes of the sweep still run"
    finally:
        if _group_alive(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
