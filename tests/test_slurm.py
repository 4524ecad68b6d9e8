"""A two-job sweep submitted to a real single-node SLURM cluster started for the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import slurm_cluster
from tests.helpers.commands import QUICK, sweep

pytestmark = [pytest.mark.slow, pytest.mark.train, pytest.mark.processes]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = slurm_cluster.available()
    if reason:
        pytest.skip(reason)
    with slurm_cluster.local_cluster(tmp_path_factory.mktemp("slurm")) as env:
        yield env


def test_sweep_jobs_run_as_slurm_jobs(slurm, monkeypatch):
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    code, summary = sweep(
        [
            *QUICK,
            "hydra/launcher=slurm",
            "hydra.launcher.mem_gb=1",
            "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.timeout_min=10",
            "optim_wrapper.optimizer.lr=0.004,0.002",
        ]
    )
    assert code == 0 and [j["status"] for j in summary["jobs"]] == ["finished"] * 2
    for job in summary["jobs"]:
        metrics = json.loads((Path(job["run_dir"]) / "metrics.json").read_text())
        assert metrics["iter"] == 4 and metrics["mIoU"] == job["mIoU"]
    # the jobs ran under SLURM: submitit kept each one's scheduler log
    (sweep_dir,) = Path("outputs/sweeps").iterdir()
    assert len(list(sweep_dir.glob(".submitit/*/*_log.out"))) == 2
    # what the preset and the command line set reached sbatch
    (script,) = sweep_dir.glob(".submitit/*/*_submission.sh")
    sbatch = script.read_text()
    for option in ("--time=10", "--cpus-per-task=1", "--mem=1GB", "--ntasks-per-node=1"):
        assert f"#SBATCH {option}\n" in sbatch, sbatch
