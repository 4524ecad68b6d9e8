"""seglab's Optuna sweeper: the study in the sweep directory, continued on relaunch, pruning."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml

from tests.helpers.commands import QUICK, sweep

SEARCH = [
    *QUICK,
    "hydra/sweeper=seglab_optuna",
    "optim_wrapper.optimizer.lr=tag(log,interval(1e-4,1e-2))",
]
NO_PRUNING = "hydra.sweeper.pruner=null"


def study() -> optuna.Study:
    (db,) = Path("outputs/sweeps").glob("*/optuna.db")
    return optuna.load_study(study_name="seglab", storage=f"sqlite:///{db.resolve()}")


def states(s: optuna.Study) -> list[str]:
    return [t.state.name for t in s.trials]


@pytest.mark.train
def test_search_maximises_the_returned_miou_in_a_sqlite_study():
    code, summary = sweep([*SEARCH, NO_PRUNING, "hydra.sweeper.n_trials=3"])
    assert code == 0 and [j["status"] for j in summary["jobs"]] == ["finished"] * 3
    s = study()
    assert states(s) == ["COMPLETE"] * 3
    lrs = [t.params["optim_wrapper.optimizer.lr"] for t in s.trials]
    assert len(set(lrs)) == 3 and all(1e-4 <= lr <= 1e-2 for lr in lrs)
    for job, trial in zip(summary["jobs"], s.trials, strict=True):
        assert trial.value == job["mIoU"]
        assert (
            json.loads((Path(job["run_dir"]) / "metrics.json").read_text())["mIoU"] == trial.value
        )
    (best,) = Path("outputs/sweeps").glob("*/best.yaml")
    assert yaml.safe_load(best.read_text())["mIoU"] == s.best_value


@pytest.mark.train
def test_relaunch_continues_the_study_and_asks_again_what_was_running():
    sweep([*SEARCH, NO_PRUNING, "hydra.sweeper.n_trials=2"])
    s = study()
    interrupted = s.ask(
        {"optim_wrapper.optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    )  # left RUNNING, as by a sweep that was killed
    lr = interrupted.params["optim_wrapper.optimizer.lr"]

    code, summary = sweep([*SEARCH, NO_PRUNING, "hydra.sweeper.n_trials=4"])
    # two more trials reach the four asked for; the summary keeps the first launch's two
    assert (
        code == 0 and [j.get("earlier", False) for j in summary["jobs"]] == [True] * 2 + [False] * 2
    )
    assert [j["trial"] for j in summary["jobs"]] == [0, 1, 3, 4]
    s = study()
    assert states(s) == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert s.trials[3].params["optim_wrapper.optimizer.lr"] == lr


@pytest.mark.train
def test_pruned_trials_are_recorded_as_pruned_not_failed():
    code, summary = sweep(
        [
            *SEARCH,
            "hydra.sweeper.n_trials=2",
            "train_cfg.val_interval=2",
            # every mIoU is below 200: the pruner stops each trial at its first validation
            # (a typed sweeper node has no key to delete: null first, so that the new pruner
            # replaces MedianPruner's arguments instead of joining them)
            NO_PRUNING,
            "hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,lower:200}",
        ]
    )
    assert code == 0
    assert [j["status"] for j in summary["jobs"]] == ["pruned"] * 2
    assert (summary["pruned"], summary["failed"]) == (2, 0)
    assert states(study()) == ["PRUNED"] * 2
    for job in summary["jobs"]:
        assert json.loads((Path(job["run_dir"]) / "metrics.json").read_text())["iter"] == 2
        assert not (Path(job["run_dir"]) / "iter_4.pth").exists(), "training stopped"


@pytest.mark.train
def test_a_broken_setup_ends_after_n_trials_failed():
    code, summary = sweep(
        [
            *SEARCH,
            NO_PRUNING,
            "hydra.sweeper.n_trials=2",
            "model.decode_head.loss_decode.loss_weight=nan",
        ]
    )
    assert code == 1
    assert [j["status"] for j in summary["jobs"]] == ["failed"] * 2
    assert states(study()) == ["FAIL"] * 2


def test_the_preset_selects_the_optuna_sweeper_and_its_search_space():
    from seglab.compose import compose
    from seglab.hparam_search import search_space

    sweeper = compose(["experiment=demo", "hparams_search=demo_optuna"]).hydra.sweeper
    assert sweeper._target_.endswith("SeglabOptunaSweeper")
    distributions, fixed = search_space(sweeper.params)
    assert distributions["optim_wrapper.optimizer.lr"].log
    assert distributions["dataset.crop_size"].choices == ("[64,64]", "[80,80]")
    assert fixed == []
