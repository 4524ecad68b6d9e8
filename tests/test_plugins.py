"""seglab's Hydra plugins laid out as Hydra lays out its own: typed options whose wrong values
are refused with one line when the config is composed, a plugin scan at start-up that imports
nothing heavy, and the SLURM preset run through submitit's local executor. (Hydra's launcher
contract suites on the GPU pool launcher: test_plugin_contracts.py.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.commands import QUICK, REPO, error_line, sweep

LRS = "optim_wrapper.optimizer.lr=0.004,0.002"


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["hydra/sweeper=seglab_optuna", "hydra.sweeper.n_trials=abc"],
            "hydra.sweeper.n_trials=abc: expected an integer",
        ),
        (
            ["hydra.sweeper.fail_fast=maybe"],
            "hydra.sweeper.fail_fast=maybe: expected true or false",
        ),
        (
            ["hydra/launcher=gpu_pool", "hydra.launcher.devices=x"],
            "hydra.launcher.devices=x: expected a list of integers or null",
        ),
        (
            ["hparams_search=demo_optuna", "hydra.sweeper.direction=max"],
            "hydra.sweeper.direction=max: expected one of maximize, minimize",
        ),
        (
            ["hydra/launcher=slurm", "hydra.launcher.timeout_min=4h"],
            "hydra.launcher.timeout_min=4h: expected an integer",
        ),
        (
            ["hydra/sweeper=seglab_optuna", "hydra.sweeper.n_trails=3"],
            "hydra.sweeper.n_trails=3: no such key; did you mean n_trials?",
        ),
    ],
)
def test_a_wrong_sweeper_or_launcher_value_is_one_line_naming_the_key(args, expected, capsys):
    assert error_line(["-m", *QUICK, *args, LRS], capsys) == f"seglab: error: {expected}"


def test_typed_options_keep_the_presets_and_files_working():
    from seglab.config.compose import compose

    sweeper = compose(["experiment=demo", "hparams_search=lr_grid"]).hydra.sweeper
    assert sweeper._target_.endswith("SeglabGridSweeper") and not sweeper.fail_fast
    assert sweeper.params["optim_wrapper.optimizer.lr"] == "0.004,0.002,0.001"
    sweeper = compose(["experiment=demo", "hparams_search=demo_optuna"]).hydra.sweeper
    assert (sweeper.n_trials, sweeper.direction.name) == (8, "maximize")
    assert sweeper.pruner._target_ == "optuna.pruners.MedianPruner"
    launcher = compose(["hydra/launcher=gpu_pool", "hydra.launcher.devices=[0,1]"]).hydra.launcher
    assert launcher._target_.endswith("GPUPoolLauncher") and launcher.devices == [0, 1]


# what a start-up must not pay for: Hydra scans the plugins whatever the command
HEAVY = ("optuna", "cloudpickle", "torch", "submitit", "joblib", "numpy", "mmengine", "mmseg")


@pytest.mark.processes
def test_the_plugin_scan_at_start_up_imports_nothing_heavy():
    script = f"""
import json, sys
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper

plugins, store = Plugins.instance(), ConfigStore.instance()
print(json.dumps({{
    "found": sorted(p.__name__ for kind in (Launcher, Sweeper) for p in plugins.discover(kind)),
    "stored": store.list("hydra/sweeper") + store.list("hydra/launcher"),
    "heavy": [m for m in {HEAVY!r} if m in sys.modules],
}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    scan = json.loads(result.stdout)
    assert {
        "SeglabGridSweeper",
        "SeglabOptunaSweeper",
        "GPUPoolLauncher",
        "SlurmLocalLauncher",
    } <= set(scan["found"])
    assert {"seglab_grid.yaml", "seglab_optuna.yaml", "gpu_pool.yaml"} <= set(scan["stored"])
    assert scan["heavy"] == []


@pytest.mark.train
@pytest.mark.processes
def test_the_slurm_preset_runs_through_submitits_local_executor(monkeypatch):
    import submitit

    given: dict[str, dict] = {}
    init, update = submitit.AutoExecutor.__init__, submitit.AutoExecutor.update_parameters

    def record_init(self, folder, cluster=None, **kwargs):
        given["executor"] = {"cluster": cluster, **kwargs}
        init(self, folder, cluster=cluster, **kwargs)

    def record_update(self, **kwargs):
        given["parameters"] = kwargs
        return update(self, **kwargs)

    monkeypatch.setattr(submitit.AutoExecutor, "__init__", record_init)
    monkeypatch.setattr(submitit.AutoExecutor, "update_parameters", record_update)
    code, summary = sweep(
        [
            *QUICK,
            "hydra/launcher=slurm_local",
            "hydra.launcher.timeout_min=20",
            # recorded in each job's exported config (under a key mmengine reads, since keys
            # no mmseg class reads are not exported): the timeout its job was given
            "+env_cfg.job_timeout_s=${oc.env:SUBMITIT_LOCAL_TIMEOUT_S}",
            LRS,
        ]
    )
    assert code == 0 and [j["status"] for j in summary["jobs"]] == ["finished"] * 2
    # the preset's values (conf/hydra/launcher/slurm.yaml) reach submitit, the override too
    assert given["executor"] == {"cluster": "local", "local_max_num_timeout": 5}
    assert {
        k: given["parameters"][k]
        for k in ("timeout_min", "cpus_per_task", "mem_gb", "gpus_per_node", "tasks_per_node")
    } == {
        "timeout_min": 20,
        "cpus_per_task": 2,
        "mem_gb": 16,
        "gpus_per_node": 0,
        "tasks_per_node": 1,
    }
    for job in summary["jobs"]:
        run_dir = Path(job["run_dir"])
        assert json.loads((run_dir / "metrics.json").read_text())["iter"] == 4
        assert re.search(r"job_timeout_s='1200'", (run_dir / "config.py").read_text())
    (sweep_dir,) = Path("outputs/sweeps").iterdir()
    assert len(list(sweep_dir.glob(".submitit/*/*_log.out"))) == 2, "submitit ran both jobs"
