"""The GPU pool behind gpu_pool_launcher.py: jobs on a pool of devices, each job in a Python
process of its own (run as `python -m hydra_plugins.seglab_plugins._gpu_pool JOB RESULT`).

Private (Hydra's plugin scan skips `_` modules): imported when jobs are launched.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import cloudpickle
from hydra.core.singleton import Singleton
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from omegaconf import open_dict

from seglab.checks.requirements import pool_devices
from seglab.masking import mask_overrides

if TYPE_CHECKING:
    from hydra_plugins.seglab_plugins.gpu_pool_launcher import GPUPoolLauncher

Job = TypeVar("Job")
_POOL_LOCK = threading.Lock()
Result = TypeVar("Result")


def run_on_devices(
    jobs: Sequence[Job],
    devices: Sequence[str],
    run_one: Callable[[Job, str], Result],
    free: queue.Queue[str] | None = None,
) -> list[Result]:
    """`run_one(job, device)` for every job, each on a device no other running job holds.

    At most len(devices) jobs run at once; a job starts when a device frees up. Results come
    back in the order of `jobs`. `free`: the queue of free devices, when calls running side by
    side share the pool (the Optuna sweeper launches its trials one by one from n_jobs threads).
    """
    if not devices:
        raise ValueError("hydra.launcher.devices is empty: expected at least one GPU")
    if free is None:
        free = device_queue(devices)

    def on_a_free_device(job: Job) -> Result:
        device = free.get()
        try:
            return run_one(job, device)
        finally:
            free.put(device)

    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        return list(pool.map(on_a_free_device, jobs))


def device_queue(devices: Sequence[str]) -> queue.Queue[str]:
    free: queue.Queue[str] = queue.Queue()
    for device in devices:
        free.put(device)
    return free


def launch(
    launcher: GPUPoolLauncher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> list[JobReturn]:
    """GPUPoolLauncher.launch: each job in a process of its own, on a device of the pool."""
    config = launcher.config
    assert config is not None
    setup_globals()
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    devices = pool_devices(launcher.devices)
    Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    singleton_state = Singleton.get_state()

    def run_one(job: tuple[int, Sequence[str]], device: str) -> JobReturn:
        idx, overrides = job
        print(
            f"[seglab gpu_pool] #{idx} on GPU {device}: "
            + " ".join(mask_overrides(filter_overrides(overrides))),
            flush=True,
        )
        job_in_process = JobInProcess(
            idx=idx,
            overrides=list(overrides),
            hydra_context=launcher.hydra_context,
            config=config,
            task_function=launcher.task_function,
            singleton_state=singleton_state,
        )
        return run_in_process(job_in_process, {"CUDA_VISIBLE_DEVICES": device})

    jobs = [(initial_job_idx + i, o) for i, o in enumerate(job_overrides)]
    with _POOL_LOCK:  # one pool per launcher, whichever thread launches first
        if launcher.free_devices is None:
            launcher.free_devices = device_queue(devices)
    return run_on_devices(jobs, devices, run_one, launcher.free_devices)


@dataclass(frozen=True)
class JobInProcess:
    """What a job's own process needs to run it as Hydra's launchers do (sent pickled)."""

    idx: int
    overrides: list[str]
    hydra_context: Any
    config: Any
    task_function: Callable
    singleton_state: Any


def run_in_process(job: JobInProcess, env: dict[str, str]) -> JobReturn:
    """Run one job in a new Python process with `env` added; return its JobReturn."""
    with tempfile.TemporaryDirectory(prefix="seglab-job-") as tmp:
        job_file, result_file = Path(tmp, "job.pkl"), Path(tmp, "result.pkl")
        job_file.write_bytes(cloudpickle.dumps(job))
        process = subprocess.run(
            [sys.executable, "-m", __name__, str(job_file), str(result_file)],
            env={**os.environ, **env},
        )
        if result_file.is_file():
            return cloudpickle.loads(result_file.read_bytes())
        # killed (out of memory, a signal) before run_job could report: a failed job all the same
        error = RuntimeError(f"the job's process exited with code {process.returncode}")
        return JobReturn(overrides=job.overrides, status=JobStatus.FAILED, _return_value=error)


def _execute_job(job_file: str, result_file: str) -> None:
    """In the job's process: as Hydra's own launchers run a job."""
    job: JobInProcess = cloudpickle.loads(Path(job_file).read_bytes())
    setup_globals()
    Singleton.set_state(job.singleton_state)
    sweep_config = job.hydra_context.config_loader.load_sweep_config(job.config, job.overrides)
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{job.idx}"
        sweep_config.hydra.job.num = job.idx
    result = run_job(
        hydra_context=job.hydra_context,
        config=sweep_config,
        task_function=job.task_function,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    Path(result_file).write_bytes(cloudpickle.dumps(result))


if __name__ == "__main__":
    _execute_job(*sys.argv[1:3])
