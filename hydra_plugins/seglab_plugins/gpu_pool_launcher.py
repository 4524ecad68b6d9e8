"""A Hydra launcher that gives each sweep job its own GPU.

`hydra/launcher=gpu_pool` (config.py holds its options): every job runs in a fresh process
whose CUDA_VISIBLE_DEVICES names one device from the pool, so it sees that GPU alone (as
cuda:0). As many jobs run at once as there are devices, and the next job starts as soon as one
of them frees up. A fresh process per job matters: CUDA fixes the visible devices when it first
initialises, so a reused worker (joblib's) could not move to another GPU.

Hydra imports this module at every start-up (its plugin scan): the pool itself is in
_gpu_pool.py, imported when jobs are launched.
"""

from __future__ import annotations

import queue
from collections.abc import Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class GPUPoolLauncher(Launcher):
    def __init__(self, devices: Sequence[int | str] | None = None) -> None:
        self.devices = [str(d) for d in devices] if devices is not None else None
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None
        # the devices no job holds, shared by launches running side by side (_gpu_pool.py)
        self.free_devices: queue.Queue[str] | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.task_function = task_function
        self.hydra_context = hydra_context

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from hydra_plugins.seglab_plugins._gpu_pool import launch

        return launch(self, job_overrides, initial_job_idx)
