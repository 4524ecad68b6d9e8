"""Preemption: on SIGTERM a run saves a checkpoint at the next iteration boundary and exits.

SLURM and most schedulers preempt or time out a job with SIGTERM and kill it a little later.
Without this, the requeued job resumes from the last periodic checkpoint, up to a whole
checkpoint interval back. With it, the job loses the iteration in flight.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import torch
from mmengine.dist import all_reduce, get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

EXIT_CODE = 128 + signal.SIGTERM  # what a shell reports for a process ended by SIGTERM


class Preempted(SystemExit):
    """Ends the process (a sweep too) once the checkpoint is written; relaunched, it resumes."""


@HOOKS.register_module()
class PreemptionHook(Hook):
    # after mmengine's CheckpointHook, which may already have saved this iteration
    priority = "LOWEST"

    def __init__(self) -> None:
        self._signalled = False

    def before_train(self, runner) -> None:
        global _previous_handler
        try:  # data loader workers forked later inherit the handler: they do not die either
            previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        except ValueError:  # not the main thread: leave the signal as it is
            return
        if _previous_handler is None:
            _previous_handler = previous

    def _on_sigterm(self, signum, frame) -> None:
        self._signalled = True

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self._any_rank_signalled():
            return
        iteration = runner.iter + 1
        checkpoint = Path(runner.work_dir) / f"iter_{iteration}.pth"
        if not checkpoint.is_file():
            runner.save_checkpoint(str(runner.work_dir), checkpoint.name, by_epoch=False)
            if is_main_process():
                (Path(runner.work_dir) / "last_checkpoint").write_text(str(checkpoint))
        message = (
            f"seglab: SIGTERM: saved {checkpoint.name} at iteration {iteration} and stopped; "
            "the same command with resume=true continues it"
        )
        runner.logger.warning(message)
        print(message, file=sys.stderr, flush=True)
        raise Preempted(EXIT_CODE)

    def _any_rank_signalled(self) -> bool:
        """Every rank stops at the same iteration, whichever received the signal."""
        if get_world_size() == 1:
            return self._signalled
        flag = torch.tensor([int(self._signalled)])
        all_reduce(flag, op="max")
        return bool(flag.item())


_previous_handler = None  # SIGTERM's handler before the first run of this process


def restore_sigterm() -> None:
    """SIGTERM as it was before training (called when a run ends, normally or not: mmengine
    calls no hook when training raises)."""
    global _previous_handler
    if _previous_handler is not None:
        signal.signal(signal.SIGTERM, _previous_handler)
        _previous_handler = None
