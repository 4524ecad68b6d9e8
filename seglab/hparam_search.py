"""Optuna for seglab's hyperparameter search: the search space, and a running job's trial (for
its lease and pruning). The study's storage: study_storage.py. The sweeper that drives them is
a Hydra plugin: hydra_plugins/seglab_plugins/optuna_sweeper.py (its options: config.py there)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

if TYPE_CHECKING:  # optuna is imported where a study is used: it costs every run start-up
    import optuna

# Set (through hydra.job.env_set) for each job the sweeper launches: the job's trial.
TRIAL_ENV = "SEGLAB_OPTUNA_TRIAL_ID"


def search_space(params: Mapping[str, str]) -> tuple[dict, list[str]]:
    """Hydra's sweep syntax to Optuna distributions, and the overrides that are fixed.

    `interval(a, b)` (`tag(log, interval(a, b))` on a log scale) is a float range, or an int
    range when both ends are ints; `range(a, b[, step])` is an int range (b excluded);
    `choice(x, y)` or `x,y` picks one of the values, kept as override strings.
    """
    import optuna

    distributions: dict[str, optuna.distributions.BaseDistribution] = {}
    fixed: list[str] = []
    parser = OverridesParser.create()
    for key, value in params.items():
        override = parser.parse_override(f"{key}={value}")
        sweep = override.value()
        if isinstance(sweep, IntervalSweep):
            log = "log" in sweep.tags
            if isinstance(sweep.start, int) and isinstance(sweep.end, int):
                distributions[key] = optuna.distributions.IntDistribution(
                    sweep.start, sweep.end, log=log
                )
            else:
                distributions[key] = optuna.distributions.FloatDistribution(
                    float(sweep.start), float(sweep.end), log=log
                )
        elif isinstance(sweep, RangeSweep):
            distributions[key] = optuna.distributions.IntDistribution(
                int(sweep.start), int(sweep.stop) - 1, step=int(sweep.step)
            )
        elif isinstance(sweep, ChoiceSweep):
            choices = list(override.sweep_string_iterator())
            distributions[key] = optuna.distributions.CategoricalDistribution(choices)
        else:
            fixed.append(f"{key}={override.get_value_element_as_str()}")
    return distributions, fixed


def current_trial() -> dict[str, Any] | None:
    """OptunaTrialHook's arguments when this job is a trial of seglab's Optuna sweeper."""
    trial_id = os.environ.get(TRIAL_ENV)
    if not trial_id:
        return None
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    hydra_cfg = HydraConfig.get()
    sweeper = OmegaConf.to_container(hydra_cfg.sweeper, resolve=True, enum_to_str=True)
    # the storage as written: a password read with ${oc.env:VAR} stays in the environment
    # (the hook's arguments are kept in the run's config.py)
    sweeper["storage"] = OmegaConf.to_container(hydra_cfg.sweeper, resolve=False)["storage"]
    sweeper.pop("params", None)
    return {"sweeper": sweeper, "sweep_dir": str(hydra_cfg.sweep.dir), "trial_id": int(trial_id)}
