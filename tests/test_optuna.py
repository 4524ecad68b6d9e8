"""seglab's Optuna sweeper: the study in the sweep directory, continued on relaunch, pruning."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml
from omegaconf import OmegaConf

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
    # trial 2's worker is gone (the sqlite file is this launch's alone): it is failed and
    # asked again as trial 3, in trial 2's directory; one more reaches the four asked for, and
    # the summary lists the study's four counted trials
    assert code == 0 and [j["trial"] for j in summary["jobs"]] == [0, 1, 3, 4]
    assert [Path(j["run_dir"]).name for j in summary["jobs"]] == [
        "trial-0",
        "trial-1",
        "trial-2",
        "trial-4",
    ]
    s = study()
    assert states(s) == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert s.trials[3].params["optim_wrapper.optimizer.lr"] == lr


@pytest.mark.train
def test_a_launch_after_the_study_is_done_reports_it_and_its_failures():
    """A launch that finds n_trials already run starts nothing and says what the study holds:
    a study whose trials failed is not exit 0 (it was, with `0 finished, 0 failed`)."""
    broken = [
        *SEARCH,
        NO_PRUNING,
        "hydra.sweeper.n_trials=2",
        "model.decode_head.loss_decode.loss_weight=nan",
    ]
    assert sweep(broken)[0] == 1
    code, summary = sweep(broken)
    assert code == 1 and (summary["finished"], summary["failed"]) == (0, 2)


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
    from seglab.config.compose import compose
    from seglab.run.hparam_search import search_space

    sweeper = compose(["experiment=demo", "hparams_search=demo_optuna"]).hydra.sweeper
    assert sweeper._target_.endswith("SeglabOptunaSweeper")
    distributions, fixed = search_space(sweeper.params)
    assert distributions["optim_wrapper.optimizer.lr"].log
    assert distributions["dataset.crop_size"].choices == ("[64,64]", "[80,80]")
    assert fixed == []


def test_the_asha_preset_prunes_by_successive_halving_at_each_validation():
    from seglab.config.compose import compose
    from seglab.run.study_storage import load_study

    config = compose(["experiment=demo", "hparams_search=demo_asha"])
    sweeper = config.hydra.sweeper
    assert sweeper.pruner._target_ == "optuna.pruners.SuccessiveHalvingPruner"
    assert sweeper.pruner.min_resource == config.train_cfg.val_interval == 250
    study = load_study(
        {
            **OmegaConf.to_container(sweeper, resolve=True, enum_to_str=True),
            "storage": "sqlite:///asha.db",
        },
        ".",
    )
    assert isinstance(study.pruner, optuna.pruners.SuccessiveHalvingPruner)


@pytest.mark.train
def test_an_asha_search_reports_every_validation_and_counts_pruned_trials():
    code, summary = sweep(
        [
            *QUICK,
            "hparams_search=demo_asha",
            "hydra.sweeper.n_trials=3",
            "train_cfg.max_iters=4",
            "train_cfg.val_interval=2",
            "hydra.sweeper.pruner.min_resource=2",
        ]
    )
    assert code == 0 and summary["finished"] + summary["pruned"] == 3
    for trial in study().trials:
        steps = sorted(trial.intermediate_values)
        assert steps == ([2, 4] if trial.state.name == "COMPLETE" else [2])
