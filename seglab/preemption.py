"""Preemption: on SIGTERM a run saves a checkpoint and exits with 143; relaunched, it resumes.

SLURM, systemd and `scancel` preempt or end a job by sending SIGTERM to every process of it, and
kill it a little later. Three processes' handlers make that a clean stop:

- the training process (PreemptionHook): the handler only raises a flag; at the end of the
  iteration in flight, or of the validation batch in flight (a long validation is not waited
  out), the run saves a checkpoint and stops;
- its data loader workers (`workers_ignore_sigterm`, applied by seglab's Runner): they ignore
  the group's SIGTERM and go on serving batches (torch's own handler would let them die, and
  the training process would fail on its next batch, before anything is saved);
- a sweep's main process (SweepSigtermCallback): when its jobs run in processes of their own
  (joblib's `cpu_parallel`, the GPU pool), it passes the signal on to them, waits until every
  job has saved and released its run directory, and exits 143; without it, a SIGTERM to the
  main process alone would leave the jobs training to their end, orphaned.
"""

from __future__ import annotations

import fcntl
import functools
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch
from hydra.experimental.callback import Callback
from mmengine.dist import all_reduce, get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import BaseLoop
from omegaconf import DictConfig

EXIT_CODE = 128 + signal.SIGTERM  # what a shell reports for a process ended by SIGTERM
JOBS_GRACE_S = 600  # how long a sweep's main process waits for its jobs to save


class Preempted(SystemExit):
    """Ends the process (a sweep too) once the checkpoint is written; relaunched, it resumes."""

    def __init__(self, checkpoint: str, iteration: int, during: str) -> None:
        super().__init__(EXIT_CODE)
        self.checkpoint, self.iteration, self.during = checkpoint, iteration, during

    def line(self, continuation: str) -> str:
        return (
            f"seglab: SIGTERM: saved {self.checkpoint} at iteration {self.iteration} and "
            f"stopped during {self.during}; {continuation}"
        )


@HOOKS.register_module()
class PreemptionHook(Hook):
    # after mmengine's CheckpointHook, which may already have saved this iteration
    priority = "LOWEST"

    def __init__(self) -> None:
        global _previous_handler
        self._signalled = False
        try:  # when the Runner is built: a signal while its loaders start is not lost
            previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        except ValueError:  # not the main thread: leave the signal as it is
            return
        if _previous_handler is None:
            _previous_handler = previous

    def _on_sigterm(self, signum, frame) -> None:
        self._signalled = True  # in a data loader worker, this copy's flag: it is never read

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self._any_rank_signalled():
            self._save_and_stop(runner, "training")

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        # validation inside training only: `seglab test` has no training state to save
        if isinstance(runner._train_loop, BaseLoop) and self._any_rank_signalled():
            self._save_and_stop(runner, "validation")

    def _save_and_stop(self, runner, during: str) -> None:
        # after a training iteration runner.iter counts it; during validation, the training
        # iterations done: either way the state a resume continues from
        iteration = runner.iter + 1 if during == "training" else runner.iter
        checkpoint = Path(runner.work_dir) / f"iter_{iteration}.pth"
        if not checkpoint.is_file():
            runner.save_checkpoint(str(runner.work_dir), checkpoint.name, by_epoch=False)
            if is_main_process():
                (Path(runner.work_dir) / "last_checkpoint").write_text(str(checkpoint))
        stop = Preempted(checkpoint.name, iteration, during)
        runner.logger.warning(stop.line("the same command continues it"))
        raise stop

    def _any_rank_signalled(self) -> bool:
        """Every rank stops at the same iteration, whichever received the signal."""
        if get_world_size() == 1:
            return self._signalled
        flag = torch.tensor([int(self._signalled)])
        all_reduce(flag, op="max")
        return bool(flag.item())


def workers_ignore_sigterm(loader):
    """`loader` (a torch DataLoader) with worker processes that ignore SIGTERM.

    torch's workers install a C handler that exits quietly on a SIGTERM from their parent and
    dies of any other: the group's signal from a scheduler kills them, and the training
    process then fails on its next batch before it can save. Ignoring it, a worker serves
    batches until the training process ends it as usual (or, if that process dies, notices
    within seconds and exits)."""
    from torch.utils.data import DataLoader

    if isinstance(loader, DataLoader) and loader.num_workers > 0:
        loader.worker_init_fn = functools.partial(_ignore_sigterm_then, loader.worker_init_fn)
    return loader


def _ignore_sigterm_then(init, worker_id: int) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # after torch set its own, before any batch
    if init is not None:
        init(worker_id)


_previous_handler = None  # SIGTERM's handler before the first run of this process


def restore_sigterm() -> None:
    """SIGTERM as it was before training (called when a run ends, normally or not: mmengine
    calls no hook when training raises)."""
    global _previous_handler
    if _previous_handler is not None:
        signal.signal(signal.SIGTERM, _previous_handler)
        _previous_handler = None


class SweepSigtermCallback(Callback):
    """A sweep's main process: SIGTERM is passed on to the processes its jobs run in, and the
    sweep ends once each has saved and released its run directory (see the module's text).

    joblib's worker processes ignore SIGTERM outside a job (an initializer of the loky backend
    this callback configures): a worker that died of the group's signal while idle would make
    loky end the whole pool, busy workers too, before they save."""

    def __init__(self) -> None:
        self._joblib_config = None
        self._previous = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not children_run_jobs(config):
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        command = continue_sweep_command(sys.argv)

        def on_sigterm(signum, frame) -> None:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the group's signal comes twice
            for pid in _descendants():
                _signal(pid)
            deadline = time.monotonic() + JOBS_GRACE_S
            while _jobs_training(sweep_dir) and time.monotonic() < deadline:
                time.sleep(0.2)
            for pid in _descendants():  # idle workers wait for work that will not come
                _signal(pid, signal.SIGKILL)
            print(
                "seglab: SIGTERM: the sweep's jobs saved their checkpoints and stopped; "
                f"the same command continues the sweep: {command}",
                file=sys.stderr,
                flush=True,
            )
            os._exit(EXIT_CODE)  # not SystemExit: joblib would end its workers first

        self._previous = signal.signal(signal.SIGTERM, on_sigterm)
        if "joblib" in str(config.hydra.launcher.get("_target_", "")):
            from joblib import parallel_config
            from joblib._parallel_backends import LokyBackend

            # the launcher's Parallel names no backend (`backend: null`): it takes this one
            self._joblib_config = parallel_config(backend=LokyBackend(initializer=ignore_sigterm))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self._joblib_config is not None:
            self._joblib_config.unregister()
            self._joblib_config = None
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None


def ignore_sigterm() -> None:
    """A job process between jobs: the group's SIGTERM is its main process's to handle."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def children_run_jobs(config: DictConfig) -> bool:
    """Whether the launcher runs jobs in processes this one starts (joblib, the GPU pool)."""
    target = str(config.hydra.launcher.get("_target_", "")).lower()
    return "joblib" in target or "gpu_pool" in target


def continue_sweep_command(argv: list[str]) -> str:
    import shlex

    from seglab.masking import mask_overrides

    program = "python -m seglab" if Path(argv[0]).name == "__main__.py" else Path(argv[0]).name
    return f"{program} {shlex.join(mask_overrides(argv[1:]))}"


def _descendants() -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process().children(recursive=True)]
    except psutil.Error:
        return []


def _signal(pid: int, signum: int = signal.SIGTERM) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _jobs_training(sweep_dir: Path) -> bool:
    """Whether some job directory of the sweep is still locked by the process training it."""
    from seglab.run_dirs import LOCK_FILE

    for lock in sweep_dir.glob(f"*/{LOCK_FILE}"):
        try:
            fd = os.open(lock, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            continue
        finally:
            os.close(fd)
    return False
