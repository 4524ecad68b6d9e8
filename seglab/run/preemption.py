"""Stopping without losing work: on SIGTERM or a first Ctrl-C a run saves a checkpoint and exits
(143 for SIGTERM, 130 for Ctrl-C); relaunched, it resumes from there.

SLURM, systemd and `scancel` preempt or end a job by sending SIGTERM to every process of it, and
kill it a little later; a terminal sends Ctrl-C (SIGINT) to every process in its foreground.
Three processes' handlers make that a clean stop:

- the training process (PreemptionHook): the handler only raises a flag; at the end of the
  iteration in flight, or of the validation batch in flight (a long validation is not waited
  out), the run saves a checkpoint and stops. A second Ctrl-C stops at once, as before;
- its data loader workers (`workers_ignore_stop_signals`, applied by seglab's Runner): they
  ignore both signals and go on serving batches (torch's own handlers would let them die, and
  the training process would fail on its next batch, before anything is saved);
- a sweep's main process (SweepSigtermCallback): when its jobs run in processes of their own
  (joblib's `cpu_parallel`, the GPU pool), it passes the signal on to them (as SIGTERM), waits
  until every job has saved and released its run directory, and exits; without it, a SIGTERM
  to the main process alone would leave the jobs training to their end, orphaned.
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
from mmengine.logging import print_log
from mmengine.runner import BaseLoop, EpochBasedTrainLoop
from omegaconf import DictConfig

from seglab.run_dirs.files import LAST_CHECKPOINT, checkpoint_file

EXIT_CODE = 128 + signal.SIGTERM  # what a shell reports for a process ended by SIGTERM
INTERRUPTED = 128 + signal.SIGINT  # ... and by Ctrl-C (SIGINT)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
JOBS_GRACE_S = 600  # how long a sweep's main process waits for its jobs to save


def signal_name(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"


class Preempted(SystemExit):
    """Ends the process (a sweep too) once the checkpoint is written; relaunched, it resumes.
    Its exit code is the shell's for the signal: 143 for SIGTERM, 130 for Ctrl-C."""

    def __init__(
        self, checkpoint: str, iteration: int, during: str, signum: int = signal.SIGTERM
    ) -> None:
        super().__init__(128 + signum)
        self.checkpoint, self.iteration, self.during = checkpoint, iteration, during
        self.signum = signum

    def line(self, continuation: str) -> str:
        return (
            f"seglab: {signal_name(self.signum)}: saved {self.checkpoint} at iteration "
            f"{self.iteration} and stopped during {self.during}; {continuation}"
        )


class PreemptionHook(Hook):
    """SIGTERM or a first Ctrl-C: save at the end of the iteration (or validation batch) in
    flight and stop; a second Ctrl-C stops at once, as Ctrl-C always did."""

    # after mmengine's CheckpointHook, which may already have saved this iteration
    priority = "LOWEST"

    def __init__(self) -> None:
        self._signal = 0  # the first stop signal received
        for signum in STOP_SIGNALS:
            try:  # when the Runner is built: a signal while its loaders start is not lost
                previous = signal.signal(signum, self._on_signal)
            except ValueError:  # not the main thread: leave the signals as they are
                return
            _previous_handlers.setdefault(signum, previous)

    def _on_signal(self, signum, frame) -> None:
        if signum == signal.SIGINT and self._signal == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: at once, from the last checkpoint
        if not self._signal:
            self._signal = signum
            if signum == signal.SIGINT:
                print(
                    "\nseglab: Ctrl-C: saving a checkpoint at the end of this iteration "
                    "(Ctrl-C again stops at once)",
                    file=sys.stderr,
                    flush=True,
                )

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
        checkpoint = Path(runner.work_dir) / checkpoint_file(iteration)
        if not checkpoint.is_file():
            # the iterations done, as mmengine's CheckpointHook records them (its default,
            # runner.iter + 1, counts one more during validation, where runner.iter has moved)
            meta = dict(epoch=runner.epoch, iter=iteration)
            runner.save_checkpoint(str(runner.work_dir), checkpoint.name, meta=meta, by_epoch=False)
            if is_main_process():
                (Path(runner.work_dir) / LAST_CHECKPOINT).write_text(str(checkpoint))
        stop = Preempted(checkpoint.name, iteration, during, self._stop_signal)
        # the log's line; the terminal's names the exact command (train.how_to_continue)
        runner.logger.warning(
            stop.line("its command with resume=true (a sweep's: run again) continues it")
        )
        raise stop

    def _any_rank_signalled(self) -> bool:
        """Every rank stops at the same iteration, whichever received the signal."""
        if get_world_size() == 1:
            self._stop_signal = self._signal
        else:
            flag = torch.tensor([self._signal])
            all_reduce(flag, op="max")
            self._stop_signal = int(flag.item())
        return bool(self._stop_signal)


class MidEpochResumingLoop(EpochBasedTrainLoop):
    """mmengine's EpochBasedTrainLoop, resumed from a checkpoint saved within an epoch (the
    PreemptionHook's, or a CheckpointHook's counting iterations) where it stopped.

    mmengine's loop starts the resumed epoch from its first batch, with the iteration count
    restored: the batches already trained are trained again, and a schedule converted to
    iterations ends before the run does. Here those batches are drawn and passed over, as
    mmengine's IterBasedTrainLoop does on a resume. seglab's Runner takes it for
    `EpochBasedTrainLoop` (the exported config.py keeps mmengine's).
    """

    def run_epoch(self) -> None:
        done = self._iter - self._epoch * len(self.dataloader)  # of this epoch, before a stop
        if done <= 0:
            return super().run_epoch()
        print_log(
            f"seglab: resumed within epoch {self._epoch + 1}: passing over the {done} batches "
            "it had trained",
            logger="current",
        )
        self.runner.call_hook("before_train_epoch")
        self.runner.model.train()
        for idx, data_batch in enumerate(self.dataloader):
            if idx >= done:
                self.run_iter(idx, data_batch)
        self.runner.call_hook("after_train_epoch")
        self._epoch += 1
        return None


def workers_ignore_stop_signals(loader):
    """`loader` (a torch DataLoader) with worker processes that ignore SIGTERM and SIGINT.

    torch's workers install a C handler that exits quietly on a SIGTERM from their parent and
    dies of any other, and end on Ctrl-C: the group's signal from a scheduler or a terminal
    ends them, and the training process then fails on its next batch before it can save.
    Ignoring both, a worker serves batches until the training process ends it as usual (or,
    if that process dies, notices within seconds and exits)."""
    from torch.utils.data import DataLoader

    if isinstance(loader, DataLoader) and loader.num_workers > 0:
        loader.worker_init_fn = functools.partial(_ignore_stop_signals_then, loader.worker_init_fn)
    return loader


def _ignore_stop_signals_then(init, worker_id: int) -> None:
    ignore_stop_signals()  # after torch set its own handlers, before any batch
    if init is not None:
        init(worker_id)


_previous_handlers: dict[int, Any] = {}  # each stop signal's handler before the first run


def restore_stop_signals() -> None:
    """SIGTERM and SIGINT as they were before training (called when a run ends, normally or
    not: mmengine calls no hook when training raises)."""
    while _previous_handlers:
        signum, handler = _previous_handlers.popitem()
        signal.signal(signum, handler)


class SweepSigtermCallback(Callback):
    """A sweep's main process: SIGTERM (or Ctrl-C) is passed on, as SIGTERM, to the processes
    its jobs run in, and the sweep ends once each has saved and released its run directory
    (see the module's text); a second Ctrl-C ends it at once.

    joblib's worker processes ignore both signals outside a job (an initializer of the loky
    backend this callback configures): a worker that died of the group's signal while idle
    would make loky end the whole pool, busy workers too, before they save."""

    def __init__(self) -> None:
        self._joblib_config = None
        self._previous: dict[int, Any] = {}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not children_run_jobs(config):
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        command = continue_sweep_command(sys.argv)
        stopping: list[int] = []

        def on_signal(signum, frame) -> None:
            if stopping:  # the group's signal comes twice; a second Ctrl-C: at once
                if signum == signal.SIGINT and stopping[0] == signal.SIGINT:
                    os._exit(INTERRUPTED)
                return
            stopping.append(signum)
            for pid in _descendants():
                _signal(pid)
            deadline = time.monotonic() + JOBS_GRACE_S
            while _jobs_training(sweep_dir) and time.monotonic() < deadline:
                time.sleep(0.2)
            for pid in _descendants():  # idle workers wait for work that will not come
                _signal(pid, signal.SIGKILL)
            print(
                f"seglab: {signal_name(signum)}: the sweep's jobs saved their checkpoints and "
                f"stopped; the same command continues the sweep: {command}",
                file=sys.stderr,
                flush=True,
            )
            os._exit(128 + signum)  # not SystemExit: joblib would end its workers first

        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, on_signal)
        if "joblib" in str(config.hydra.launcher.get("_target_", "")):
            from joblib import parallel_config
            from joblib._parallel_backends import LokyBackend

            # the launcher's Parallel names no backend (`backend: null`): it takes this one
            self._joblib_config = parallel_config(
                backend=LokyBackend(initializer=ignore_stop_signals)
            )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self._joblib_config is not None:
            self._joblib_config.unregister()
            self._joblib_config = None
        while self._previous:
            signal.signal(*self._previous.popitem())


def ignore_stop_signals() -> None:
    """A job's process between jobs, or a data loader worker: SIGTERM and Ctrl-C are for the
    process that can save (the training process, the sweep's main process)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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
    from seglab.run_dirs.files import LOCK_FILE

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
