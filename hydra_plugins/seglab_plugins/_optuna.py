"""The Optuna search behind optuna_sweeper.py: asks the study for trials, launches them as
sweep jobs, tells it their mIoU (or that they were pruned or failed).

Private (Hydra's plugin scan skips `_` modules): imported when a search runs, as Optuna costs
every start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.seglab_plugins._sweep import finish_sweep, job_record, start_sweep
from seglab.hparam_search import TRIAL_ENV, load_study, search_space

ENDED = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)
# user attribute of a trial that an interrupted sweep left running: asked again, not counted
INTERRUPTED = "seglab_interrupted"


def search(config: DictConfig, launcher: Launcher, arguments: list[str]) -> None:
    """The sweep of `hydra/sweeper=seglab_optuna`, with the command line's `arguments`."""
    sweep_dir = start_sweep(config)
    cfg = OmegaConf.to_container(config.hydra.sweeper, resolve=True, enum_to_str=True)
    distributions, fixed = search_space({**(cfg.get("params") or {}), **_as_params(arguments)})
    study = load_study(cfg, sweep_dir)
    _ask_again_what_was_running(study)

    jobs: list[dict[str, Any]] = []
    while (left := cfg["n_trials"] - _trials_run(study)) > 0:
        trials = [study.ask(distributions) for _ in range(min(cfg["n_jobs"], left))]
        batch = [
            [
                *fixed,
                *(f"{k}={v}" for k, v in t.params.items()),
                f"+hydra.job.env_set.{TRIAL_ENV}={t._trial_id}",
            ]
            for t in trials
        ]
        results = launcher.launch(batch, initial_job_idx=len(study.trials) - len(trials))
        for trial, result in zip(trials, results, strict=True):
            jobs.append(_tell(study, trial, result))
    finish_sweep(jobs, sweep_dir, last_lines=_write_best(study, sweep_dir))


def _as_params(arguments: list[str]) -> dict[str, str]:
    """Command-line overrides as params: `key=interval(0,1)` joins the search space."""
    return dict(a.split("=", 1) for a in arguments)


def _trials_run(study: optuna.Study) -> int:
    """Trials that ran to an end (a failed one counts: a broken setup must not loop forever)."""
    return sum(
        t.state in ENDED and not t.user_attrs.get(INTERRUPTED)
        for t in study.get_trials(deepcopy=False)
    )


def _ask_again_what_was_running(study: optuna.Study) -> None:
    """Trials left RUNNING by an interrupted sweep: failed now, and their parameters queued,
    so their jobs (same overrides, same run directories) resume from their checkpoints."""
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)


def _tell(study: optuna.Study, trial: optuna.Trial, result: JobReturn) -> dict[str, Any]:
    record = job_record(result)
    error = result._return_value if result.status == JobStatus.FAILED else None
    if error is not None and type(error).__name__ == "TrialPruned":
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        record.update(status="pruned", error=str(error))
    elif error is not None:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:
        study.tell(trial, float(result.return_value))
    record["trial"] = trial.number
    return record


def _write_best(study: optuna.Study, sweep_dir: Path) -> list[str]:
    """SWEEP_DIR/best.yaml for the best complete trial, and the line that names it."""
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return []
    best = study.best_trial
    (sweep_dir / "best.yaml").write_text(
        OmegaConf.to_yaml({"trial": best.number, "mIoU": best.value, "params": best.params})
    )
    return [f"best trial {best.number}: mIoU={best.value} with {best.params}"]
