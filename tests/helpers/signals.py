"""SIGTERM to a whole process group from another process, as SLURM, systemd and `scancel`
send it, at a moment of a run chosen exactly: an mmengine hook a test adds with
`+custom_hooks=[{type:SignalGroupHook,moment:...}]` to a seglab process started by
`seglab_in_own_group`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from tests.helpers.commands import REPO

MOMENTS = ("training", "validation", "checkpoint")


@HOOKS.register_module()
class SignalGroupHook(Hook):
    """`os.killpg(own group, SIGTERM)` once: before training iteration `at`, after validation
    batch `at`, or as the first checkpoint is about to be written."""

    def __init__(self, moment: str, at: int = 3) -> None:
        assert moment in MOMENTS, moment
        self.moment, self.at, self.fired = moment, at, False

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self.moment == "training" and runner.iter + 1 == self.at:
            self._fire()

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.moment == "validation" and batch_idx + 1 == self.at:
            self._fire()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.moment == "checkpoint":
            self._fire()

    def _fire(self) -> None:
        """From another process, as a scheduler sends it (torch's loader workers tell their
        parent's SIGTERM from anyone else's); returns once the group has been signalled."""
        if not self.fired:
            self.fired = True
            group = os.getpgid(0)
            subprocess.run(
                [sys.executable, "-c", f"import os; os.killpg({group}, {int(signal.SIGTERM)})"],
                start_new_session=True,  # not itself in the group it signals
                check=True,
            )


@HOOKS.register_module()
class CtrlCHook(Hook):
    """Ctrl-C `times` times (SIGINT to the training process itself, each handled before the
    next is sent) before training iteration `at`."""

    def __init__(self, at: int = 3, times: int = 1) -> None:
        self.at, self.times = at, times

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if runner.iter + 1 == self.at:
            for _ in range(self.times):
                os.kill(os.getpid(), signal.SIGINT)  # Python runs the handler right after


def seglab_in_own_group(args: list[str]) -> subprocess.CompletedProcess:
    """`seglab ARGS` in a process group of its own (it, its data loader workers and any job
    processes), with SignalGroupHook importable, run to its end."""
    code = "import sys, tests.helpers.signals; from seglab.cli import main; main(sys.argv[1:])"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
        start_new_session=True,
    )
