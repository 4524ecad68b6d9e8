"""A two-job sweep submitted to a real single-node SLURM cluster started for the test."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from tests.helpers import postgres, slurm_cluster
from tests.helpers.commands import QUICK, REPO, sweep

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


@pytest.mark.skipif(postgres.available() is not None, reason=str(postgres.available()))
def test_an_sbatch_array_of_optuna_workers_shares_one_postgres_study(slurm, tmp_path, monkeypatch):
    """README's cluster form: each task of a SLURM array is a worker of one study."""
    with postgres.server() as server:
        monkeypatch.setenv("PGPASSWORD", server.env["PGPASSWORD"])
        search = [
            sys.executable,
            "-m",
            "seglab",
            "-m",
            *QUICK,
            "hydra/sweeper=seglab_optuna",
            "optim_wrapper.optimizer.lr=tag(log,interval(1e-4,1e-2))",
            "hydra/sweeper/pruner=none",
            f"hydra.sweeper.storage={server.url}",
            "hydra.sweeper.n_trials=3",
        ]
        env = {**os.environ, **slurm, **server.env, "PYTHONPATH": str(REPO)}
        submitted = subprocess.run(
            [
                "sbatch",
                "--parsable",
                "--array=0-1",
                "--cpus-per-task=1",
                "--mem=1G",
                f"--output={tmp_path}/worker-%a.out",
                "--wrap",
                shlex.join(search),
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        job = submitted.stdout.strip().split(";")[0]
        deadline = time.monotonic() + 400
        while subprocess.run(
            ["squeue", "-h", "-j", job], env=env, capture_output=True, text=True
        ).stdout.strip():
            assert time.monotonic() < deadline, "the array did not end"
            time.sleep(1)
        outputs = [p.read_text() for p in sorted(tmp_path.glob("worker-*.out"))]
        (name,) = optuna.get_all_study_names(server.url)
        trials = optuna.load_study(study_name=name, storage=server.url).trials
    assert len(outputs) == 2 and all("seglab sweep: 3 finished, 0 failed" in o for o in outputs)
    # two workers asking at the same moment past n_trials: the later trial is marked surplus
    # and told failed before any job runs it (it does not count; test_search_workers's rule)
    surplus = [t for t in trials if t.user_attrs.get("seglab_surplus")]
    assert all(t.state.name == "FAIL" and "seglab_job" not in t.user_attrs for t in surplus)
    trials = [t for t in trials if t not in surplus]
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3, outputs
    assert len({t.user_attrs["seglab_worker"] for t in trials}) == 2
