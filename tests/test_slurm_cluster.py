"""The SLURM test cluster's stopping ends what it started, by process id, and nothing else."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import slurm_cluster

pytestmark = pytest.mark.processes


def wait_for(done, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def started():
    """Popen, with every process it starts ended and reaped afterwards."""
    processes = []

    def start(*args, **kwargs) -> subprocess.Popen:
        processes.append(subprocess.Popen(*args, **kwargs))
        return processes[-1]

    yield start
    for process in processes:
        process.kill()
        process.wait()


def test_a_daemon_is_stopped_with_its_children_and_an_unrelated_sleep_lives_on(started, tmp_path):
    unrelated = started(["sleep", "300"])
    daemon = started(["sh", "-c", "sleep 301 & sleep 302 & wait"])
    wait_for(lambda: len(slurm_cluster.started_by(daemon.pid)) == 3)
    children = slurm_cluster.started_by(daemon.pid) - {daemon.pid}
    (tmp_path / "daemon.pid").write_text(f"{daemon.pid}\n")

    slurm_cluster.stop_started(tmp_path / "daemon.pid", "not-sh")  # another name: left alone
    assert daemon.poll() is None

    slurm_cluster.stop_started(tmp_path / "daemon.pid", "sh")
    assert daemon.wait(timeout=10) == -15
    assert not [pid for pid in children if slurm_cluster._alive(pid)]
    assert unrelated.poll() is None, "a process the daemon did not start"


def test_what_outlives_its_parent_is_found_by_the_clusters_slurm_conf(started, tmp_path):
    conf = tmp_path / "slurm.conf"
    env = {**os.environ, "SLURM_CONF": str(conf)}
    unrelated = started(["sleep", "300"], env={**os.environ, "SLURM_CONF": f"{conf}.other"})
    # a task whose parent has exited: reparented, in no session of the cluster's
    parent = started(["sh", "-c", "sleep 303 & echo $!"], env=env, stdout=subprocess.PIPE)
    orphan = int(parent.stdout.readline())
    parent.stdout.close()
    parent.wait()
    assert slurm_cluster.started_by(parent.pid) == set()
    assert slurm_cluster.cluster_processes(conf) == {orphan}

    slurm_cluster.end(slurm_cluster.cluster_processes(conf))
    assert not slurm_cluster._alive(orphan)
    assert unrelated.poll() is None
    assert slurm_cluster.cluster_processes(Path(f"{conf}.other")) == {unrelated.pid}
