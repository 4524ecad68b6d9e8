"""A Hydra sweeper on the current Optuna release: seglab's hyperparameter search.

`hydra/sweeper=seglab_optuna` (or an `hparams_search/` file that picks it): the task's returned
mIoU is the objective; the search space is `hydra.sweeper.params` in Hydra's sweep syntax; the
study lives in SWEEP_DIR/optuna.db, so the same command launched again continues it (trials that
were running when it stopped are asked again with the same parameters, and seglab resumes their
runs from their checkpoints). Each job reports its validations to its trial through an mmengine
hook (seglab.hooks.OptunaPruningHook); a trial the pruner stops is recorded as pruned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.seglab_plugins.grid_sweeper import job_record, report
from seglab.hparam_search import TRIAL_ENV, load_study, search_space
from seglab.masking import mask_launcher_logs

ENDED = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)
# user attribute of a trial that an interrupted sweep left running: asked again, not counted
INTERRUPTED = "seglab_interrupted"


class SeglabOptunaSweeper(Sweeper):
    def __init__(self, **sweeper_cfg: Any) -> None:
        self.sweeper_cfg = sweeper_cfg
        self.config: DictConfig | None = None
        self.launcher = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        assert self.config is not None and self.launcher is not None
        mask_launcher_logs()
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        cfg = OmegaConf.to_container(self.config.hydra.sweeper, resolve=True)
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
            results = self.launcher.launch(batch, initial_job_idx=len(study.trials) - len(trials))
            for trial, result in zip(trials, results, strict=True):
                record = _tell(study, trial, result)
                jobs.append(record)
        report(jobs, 0, sweep_dir)
        _write_best(study, sweep_dir)
        if any(j["status"] == "failed" for j in jobs):
            raise SystemExit(1)


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


def _write_best(study: optuna.Study, sweep_dir: Path) -> None:
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return
    best = study.best_trial
    (sweep_dir / "best.yaml").write_text(
        OmegaConf.to_yaml({"trial": best.number, "mIoU": best.value, "params": best.params})
    )
    print(f"best trial {best.number}: mIoU={best.value} with {best.params}", flush=True)
