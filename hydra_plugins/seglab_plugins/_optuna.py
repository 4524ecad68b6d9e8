"""The Optuna search behind optuna_sweeper.py: one worker of a study that any number of
workers may share. The worker asks the study for trials, launches each as a sweep job, and
tells the study its mIoU (or that it was pruned or failed).

- `n_trials` counts the study's trials, whichever worker ran them; a worker stops asking when
  they are all asked for, and ends when none is left running anywhere (it takes over one whose
  lease expires meanwhile).
- Each trial holds a lease from the moment it is asked for (seglab/run/study_storage.py): a trial
  whose worker died is failed by the next worker that looks, and Optuna queues it again with the
  same parameters; its job is named after the first trial's number, so it resumes from the
  checkpoint the first one left.
- With `n_jobs=K`, K trials are in flight, each launched on its own as soon as a slot frees up
  (no batch barrier); `batched=true` launches K at once and waits for all of them, as Hydra's
  own sweepers do.
- The summary, best.yaml and the exit code are the study's, whichever worker ends last.

Private (Hydra's plugin scan skips `_` modules): imported when a search runs, as Optuna costs
every start-up.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.seglab_plugins._sweep import finish_sweep, job_record, start_sweep
from seglab.errors import ConfigError, exit_with_error, is_pruned
from seglab.masking import mask_text
from seglab.run.hparam_search import (
    JOB,
    SURPLUS,
    TRIAL_ENV,
    WORKER,
    counted,
    quiet_optuna,
    retried,
    search_space,
    study_jobs,
)
from seglab.run.study_storage import (
    Lease,
    check_leases,
    check_storage,
    load_study,
    may_judge_leases,
    note_database_away,
    sole_worker,
    sqlite_file,
    storage_errors,
    storage_url,
    worker_name,
)
from seglab.run_dirs.files import BEST_FILE

State = optuna.trial.TrialState
# how long a worker waits for its study's database to answer again
OUTAGE_S = 600
IN_PROCESS = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


def search(config: DictConfig, launcher: Launcher, arguments: list[str]) -> None:
    """The sweep of `hydra/sweeper=seglab_optuna`, with the command line's `arguments`."""
    sweep_dir = start_sweep(config)
    cfg = OmegaConf.to_container(config.hydra.sweeper, resolve=True, enum_to_str=True)
    # as written: a password read with ${oc.env:VAR} is not one written into the URL
    written = OmegaConf.to_container(config.hydra.sweeper, resolve=False)["storage"]
    url = storage_url(cfg.get("storage"), sweep_dir)
    try:
        distributions, fixed = search_space({**(cfg.get("params") or {}), **_as_params(arguments)})
        check_storage(storage_url(written, sweep_dir))
        check_leases(cfg["heartbeat_interval"], cfg.get("grace_period"))
        _check_slots(cfg, config.hydra.launcher.get("_target_"))
        database = sqlite_file(url)
        with sole_worker(database) if database else contextlib.nullcontext():
            study = _open(cfg, sweep_dir, url)
            _check_same_search(study, distributions)
            if not database:
                # workers sharing a database draw their own random numbers: with the seed
                # they were all given, each would propose the same trials
                study.sampler.reseed_rng()
            worker = Worker(study, cfg, launcher, distributions, fixed)
            if database:  # this worker alone searches the file: what runs has no worker
                worker.take_over_orphans()
            worker.run()
            jobs = worker.outlasting(lambda: study_jobs(study))
            best = worker.outlasting(lambda: _write_best(study, sweep_dir))
    except ConfigError as err:  # Hydra would print a traceback for an exception from here
        exit_with_error(err)
    finish_sweep(jobs, sweep_dir, last_lines=best, earlier=False)


def _check_same_search(study: optuna.Study, distributions: dict[str, Any]) -> None:
    """One line when the study holds trials of a search over other parameters (two searches
    given one study_name would otherwise mix their trials, budgets and pruning)."""
    ours = set(distributions)
    for trial in study.get_trials(deepcopy=False):
        if trial.distributions and set(trial.distributions) != ours:
            raise ConfigError(
                f"hydra.sweeper.study_name={study.study_name}: this study holds trials over "
                f"{', '.join(sorted(trial.distributions))}, not over {', '.join(sorted(ours))}; "
                "give this search a study of its own: hydra.sweeper.study_name=NAME"
            )


def _as_params(arguments: list[str]) -> dict[str, str]:
    """Command-line overrides as params: `key=interval(0,1)` joins the search space."""
    return dict(a.split("=", 1) for a in arguments)


def _check_slots(cfg: dict[str, Any], launcher_target: str | None) -> None:
    if cfg["n_trials"] < 1:
        raise ConfigError(f"hydra.sweeper.n_trials={cfg['n_trials']}: expected at least 1 trial")
    n_jobs = cfg["n_jobs"]
    if n_jobs < 1:
        raise ConfigError(f"hydra.sweeper.n_jobs={n_jobs}: expected at least 1 trial at once")
    if n_jobs > 1 and launcher_target == IN_PROCESS and not cfg["batched"]:
        raise ConfigError(
            f"hydra.sweeper.n_jobs={n_jobs}: Hydra's basic launcher runs one job at a time, in "
            f"this process; launch them in processes of their own to run {n_jobs} at once "
            "(hydra/launcher=cpu_parallel, gpu_pool or slurm), or set hydra.sweeper.n_jobs=1"
        )


def _open(cfg: dict[str, Any], sweep_dir: Path, url: str) -> optuna.Study:
    """The study, or one line when its database cannot be reached."""
    import sqlalchemy

    try:
        with quiet_optuna():
            return load_study(cfg, sweep_dir)
    except ImportError as err:  # SQLAlchemy found no driver for the database
        raise ConfigError(
            f"hydra.sweeper.storage={mask_text(url)}: the database's driver is not installed "
            f"({str(err).strip().splitlines()[0]}); install it (PostgreSQL: the `search` extra)"
        ) from None
    except sqlalchemy.exc.OperationalError as err:
        reason = str(err.orig or err).strip().splitlines()[0]
        raise ConfigError(
            f"hydra.sweeper.storage={mask_text(url)}: cannot open the study ({reason}); start "
            "the database or correct the URL (its password comes from PGPASSWORD or ~/.pgpass)"
        ) from None


class Worker:
    """One sweeper process's share of the study."""

    def __init__(
        self,
        study: optuna.Study,
        cfg: dict[str, Any],
        launcher: Launcher,
        distributions: dict[str, Any],
        fixed: list[str],
    ) -> None:
        self.study, self.cfg, self.launcher = study, cfg, launcher
        self.distributions, self.fixed = distributions, fixed
        self.name = worker_name()
        self._asking = threading.Lock()  # one ask at a time: the budget check is per ask
        interval = cfg.get("heartbeat_interval") or 10
        self.poll_s = min(interval, 10)
        # without leases (a journal file) a dead worker's trial would look alive for ever:
        # a worker then ends with its own trials instead of waiting for the others'
        self.leases = getattr(study._storage, "get_heartbeat_interval", lambda: None)() is not None
        self._outage_told = False

    def take_over_orphans(self) -> None:
        """Trials left RUNNING in a study only this worker may search (a sqlite file it locks):
        their worker is gone, so they are failed now and queued again at once, as an expired
        lease would have them."""
        storage = self.study._storage
        callback = storage.get_heartbeat_stale_trial_callback()
        for trial in self.study.get_trials(deepcopy=False, states=(State.RUNNING,)):
            if storage.set_trial_state_values(trial._trial_id, state=State.FAIL) and callback:
                with quiet_optuna():
                    callback(self.study, storage.get_trial(trial._trial_id))

    def run(self) -> None:
        slots = self.cfg["n_jobs"]
        if self.cfg["batched"]:
            self._run_batches()
        elif slots == 1:
            self._run_slot()  # in this thread: a job run in this process needs the main thread
        else:
            threads = [
                threading.Thread(target=self._run_slot, name=f"seglab-slot-{i}", daemon=True)
                for i in range(slots)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():  # a timeout keeps this thread open to signals
                    thread.join(timeout=1)

    def outlasting(self, step: Callable[[], Any]) -> Any:
        """`step()`, tried again while the study's database does not answer (a restart, the
        network), for up to OUTAGE_S seconds; then one line, the trials left to their leases."""
        deadline = time.monotonic() + OUTAGE_S
        while True:
            try:
                result = step()
                self._outage_told = False
                return result
            except storage_errors() as err:
                note_database_away()
                reason = (str(getattr(err, "orig", None) or err).strip().splitlines() or [""])[0]
                if time.monotonic() > deadline:
                    raise ConfigError(
                        f"hydra.sweeper.storage: the study's database has not answered for "
                        f"{OUTAGE_S} s ({mask_text(reason)}); its trials keep their "
                        "checkpoints: launch the same command again once it answers"
                    ) from None
                if not self._outage_told:
                    print(
                        f"[seglab optuna] the study's database does not answer "
                        f"({mask_text(reason)}); trying again every {self.poll_s} s",
                        flush=True,
                    )
                    self._outage_told = True
                time.sleep(self.poll_s)

    def _run_slot(self) -> None:
        while True:
            claimed = self.outlasting(self.claim)
            if claimed is None:
                if self.outlasting(self.all_ended):
                    return
                time.sleep(self.poll_s)  # for a lease to expire, or the last trials to end
                continue
            trial, lease = claimed
            try:  # the lease is held until the result is told: no sibling fails it meanwhile
                job = self.outlasting(lambda t=trial: self.overrides(t))
                (result,) = self.launcher.launch([job], trial.number)
                self.outlasting(lambda t=trial, r=result: self.tell(t, r))
            finally:
                lease.end()

    def _run_batches(self) -> None:
        while True:
            claimed = []
            while len(claimed) < self.cfg["n_jobs"]:
                one = self.outlasting(self.claim)
                if one is None:
                    break
                claimed.append(one)
            if not claimed:
                if self.outlasting(self.all_ended):
                    return
                time.sleep(self.poll_s)
                continue
            try:  # the leases are held until the results are told
                jobs = [self.outlasting(lambda t=t: self.overrides(t)) for t, _ in claimed]
                results = self.launcher.launch(jobs, claimed[0][0].number)
                for (trial, _), result in zip(claimed, results, strict=True):
                    self.outlasting(lambda t=trial, r=result: self.tell(t, r))
            finally:
                for _, lease in claimed:
                    lease.end()

    def claim(self) -> tuple[optuna.Trial, Lease] | None:
        """The next trial for this worker, leased, or None when n_trials are asked for."""
        storage = self.study._storage
        with self._asking, quiet_optuna():
            while True:
                if may_judge_leases(storage):  # not right after the database was away
                    optuna.storages.fail_stale_trials(self.study)
                trials = counted(self.study.get_trials(deepcopy=False))
                waiting = any(t.state == State.WAITING for t in trials)
                if len(trials) >= self.cfg["n_trials"] and not waiting:
                    return None
                trial = self.study.ask(self.distributions)
                lease = Lease(storage, trial._trial_id)
                storage.set_trial_user_attr(trial._trial_id, WORKER, self.name)
                # another worker may have asked at the same moment: the trials created
                # before this one decide whether it is within n_trials
                before = [
                    t
                    for t in counted(self.study.get_trials(deepcopy=False))
                    if t._trial_id <= trial._trial_id
                ]
                if len(before) <= self.cfg["n_trials"]:
                    return trial, lease
                lease.end()
                storage.set_trial_user_attr(trial._trial_id, SURPLUS, True)
                self.study.tell(trial, state=State.FAIL)

    def overrides(self, trial: optuna.Trial) -> list[str]:
        """The job of `trial`: the fixed overrides, the sampled ones, the trial's id for its
        hook, and its directory, named after the first trial of its retries."""
        frozen = self.study._storage.get_trial(trial._trial_id)
        first = (retried(frozen) or [trial.number])[0]
        return [
            *self.fixed,
            *(f"{k}={v}" for k, v in trial.params.items()),
            f"+hydra.job.env_set.{TRIAL_ENV}={trial._trial_id}",
            f"hydra.sweep.subdir=trial-{first}",
        ]

    def tell(self, trial: optuna.Trial, result: JobReturn) -> None:
        record = job_record(result)
        error = result._return_value if result.status == JobStatus.FAILED else None
        storage = self.study._storage
        try:
            storage.set_trial_user_attr(trial._trial_id, JOB, record)
        except optuna.exceptions.UpdateFinishedTrialError:
            print(
                f"[seglab optuna] trial {trial.number}: its lease expired while it ran and "
                "another worker has taken it over; this result is not counted",
                flush=True,
            )
            return
        if is_pruned(error):
            self.study.tell(trial, state=State.PRUNED, skip_if_finished=True)
        elif error is not None:
            self.study.tell(trial, state=State.FAIL, skip_if_finished=True)
        else:
            self.study.tell(trial, float(result.return_value), skip_if_finished=True)

    def all_ended(self) -> bool:
        """No counted trial of the study is running or waiting, in any worker (without leases:
        none left to ask for)."""
        if not self.leases:
            return True
        trials = counted(self.study.get_trials(deepcopy=False))
        return not any(t.state in (State.RUNNING, State.WAITING) for t in trials)


def _write_best(study: optuna.Study, sweep_dir: Path) -> list[str]:
    """SWEEP_DIR/best.yaml for the best complete trial, and the line that names it."""
    complete = study.get_trials(states=(State.COMPLETE,))
    if not complete:
        return []
    best = study.best_trial
    (sweep_dir / BEST_FILE).write_text(
        OmegaConf.to_yaml({"trial": best.number, "mIoU": best.value, "params": best.params})
    )
    return [f"best trial {best.number}: mIoU={best.value} with {best.params}"]
