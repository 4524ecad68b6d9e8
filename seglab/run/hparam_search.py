"""Optuna for seglab's hyperparameter search: the search space, and a running job's trial (for
its lease and pruning). The study's storage: study_storage.py. The sweeper that drives them is
a Hydra plugin: hydra_plugins/seglab_plugins/optuna_sweeper.py (its options: config.py there)."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

if TYPE_CHECKING:  # optuna is imported where a study is used: it costs every run start-up
    import optuna

# Set (through hydra.job.env_set) for each job the sweeper launches: the job's trial.
TRIAL_ENV = "SEGLAB_OPTUNA_TRIAL_ID"
# user attributes of a trial: the worker that ran it, its job's summary record, and a trial
# asked for past n_trials by a worker that raced another one (never run, not counted)
WORKER = "seglab_worker"
JOB = "seglab_job"
SURPLUS = "seglab_surplus"


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


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Without Optuna's notes on the API seglab chose: heartbeats with ask-and-tell (its
    warning assumes `optimize`) and its experimental retry functions."""
    import optuna

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        yield


def retried(trial: optuna.trial.FrozenTrial) -> list[int]:
    """The numbers of the trials `trial` retries (Optuna's RetryHeartbeatStaleTrialCallback),
    the first one first; [] for a trial that retries none."""
    import optuna

    with quiet_optuna():
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retry_history(trial)


def counted(trials: Sequence[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """The trials n_trials counts: not one whose lease expired (its retry counts instead), not
    one asked for past the budget. A failed trial counts: a broken setup must not loop forever."""
    from optuna.trial import TrialState

    replaced = {n for t in trials for n in retried(t)}
    return [
        t
        for t in trials
        if not (t.state == TrialState.FAIL and t.number in replaced)
        and not t.user_attrs.get(SURPLUS)
    ]


def study_jobs(study: optuna.Study) -> list[dict[str, Any]]:
    """Every counted trial of the study as a summary job, whichever worker ran it: the record
    its worker kept, its trial number, worker and state."""
    from optuna.trial import TrialState

    from seglab.masking import mask_overrides

    status = {
        TrialState.COMPLETE: "finished",
        TrialState.PRUNED: "pruned",
        TrialState.FAIL: "failed",
        TrialState.RUNNING: "running",
        TrialState.WAITING: "waiting",
    }
    jobs = []
    for trial in counted(study.get_trials(deepcopy=False)):
        job = dict(trial.user_attrs.get(JOB) or {})
        if not job:  # not ended yet, or ended by a lease that expired
            params = [f"{k}={v}" for k, v in trial.params.items()]
            job = {"overrides": mask_overrides(params), "run_dir": None}
        job.update(
            trial=trial.number,
            worker=trial.user_attrs.get(WORKER),
            status=status[trial.state],
        )
        if trial.state == TrialState.COMPLETE:
            job["mIoU"] = trial.value
        elif trial.state == TrialState.FAIL and "error" not in job:
            job["error"] = "its worker stopped (its lease expired) and it was not retried"
        elif trial.state == TrialState.PRUNED and "error" not in job:
            job["error"] = "pruned"
        jobs.append(job)
    return jobs
