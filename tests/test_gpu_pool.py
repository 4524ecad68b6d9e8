"""The GPU pool launcher's scheduling, on a fake device list (no GPU needed)."""

from __future__ import annotations

import re
import threading
import time

import pytest

from hydra_plugins.seglab_plugins._gpu_pool import run_on_devices
from tests.helpers.commands import SMALL_SYNTHETIC, sweep


def test_each_job_holds_a_device_of_its_own_and_the_next_starts_when_one_frees():
    events: list[tuple[float, str, int, str]] = []
    lock = threading.Lock()
    durations = [0.3, 0.1, 0.1, 0.1, 0.2]

    def run_one(job: int, device: str) -> str:
        with lock:
            events.append((time.monotonic(), "start", job, device))
        time.sleep(durations[job])
        with lock:
            events.append((time.monotonic(), "end", job, device))
        return f"job {job} on {device}"

    results = run_on_devices(list(range(5)), ["0", "1"], run_one)
    assert [r.split()[1] for r in results] == ["0", "1", "2", "3", "4"], "in the jobs' order"

    holder: dict[str, int] = {}
    running = 0
    for _, kind, job, device in sorted(events):
        if kind == "start":
            assert device not in holder, (
                f"job {job} got GPU {device} while job {holder.get(device)} ran"
            )
            holder[device] = job
            running += 1
            assert running <= 2
        else:
            del holder[device]
            running -= 1
    # job 0 is long: the short jobs 1, 2, 3 pass through the other GPU meanwhile
    devices = {job: device for _, kind, job, device in events if kind == "start"}
    assert devices[1] == devices[2] == devices[3] != devices[0]


def test_an_empty_pool_is_an_error():
    with pytest.raises(ValueError, match="hydra.launcher.devices"):
        run_on_devices([1], [], lambda job, device: job)


@pytest.mark.train
@pytest.mark.processes
def test_sweep_on_a_fake_pool_of_two_gpus(capfd):
    args = [
        "experiment=demo",
        *SMALL_SYNTHETIC,
        "train_cfg.max_iters=2",
        "train_cfg.val_interval=2",
        "hydra/launcher=gpu_pool",
        "hydra.launcher.devices=[0,1]",
        # recorded in each job's exported config (under a key mmengine reads, since keys no
        # mmseg class reads are not exported): the GPU its process was given
        "+env_cfg.visible_gpu=${oc.env:CUDA_VISIBLE_DEVICES}",
        "optim_wrapper.optimizer.lr=0.004,0.002,0.001",
    ]
    code, summary = sweep(args)
    assert code == 0 and [j["status"] for j in summary["jobs"]] == ["finished"] * 3
    from pathlib import Path

    seen = [
        re.search(r"visible_gpu='(\d)'", (Path(j["run_dir"]) / "config.py").read_text())[1]
        for j in summary["jobs"]
    ]
    assert set(seen) <= {"0", "1"} and len(set(seen)) == 2
    assert len(re.findall(r"\[seglab gpu_pool\] #\d on GPU [01]", capfd.readouterr().out)) == 3
