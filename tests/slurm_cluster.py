"""A real single-node SLURM cluster on this machine, for the tests: munge, slurmctld, slurmd.

Needs Debian's slurm-wlm and munge (.ci/run installs them) and root (the daemons run as root,
munged as the munge user). Everything the cluster writes stays in one temporary folder, and
the daemons are stopped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

MUNGE_KEY = Path("/etc/munge/munge.key")


def available() -> str | None:
    """Why a cluster cannot be started here, or None."""
    missing = [b for b in ("slurmctld", "slurmd", "munged", "sbatch") if not shutil.which(b)]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} missing; .ci/run installs it)"
    if os.geteuid() != 0:
        return "starting slurmctld, slurmd and munged needs root"
    return None


def _run(*cmd: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)


@contextlib.contextmanager
def munge() -> Iterator[None]:
    if not MUNGE_KEY.is_file():
        _run("mungekey", "--create", "--keyfile", str(MUNGE_KEY))
    shutil.chown(MUNGE_KEY, "munge", "munge")
    MUNGE_KEY.chmod(0o400)
    for folder in ("/run/munge", "/var/lib/munge", "/var/log/munge"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.chown(folder, "munge", "munge")
    already = subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode == 0
    if not already:
        _run("runuser", "-u", "munge", "--", "munged")
    try:
        yield
    finally:
        if not already:
            subprocess.run(["pkill", "-x", "munged"])


def write_conf(root: Path) -> Path:
    host = socket.gethostname().split(".")[0]
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    for folder in ("state", "spool", "log"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    conf = root / "slurm.conf"
    conf.write_text(
        f"""ClusterName=seglab-test
SlurmctldHost={host}
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
NodeName={host} CPUs={os.cpu_count()} RealMemory={memory_mb // 2} State=UNKNOWN
PartitionName=seglab Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""
    )
    return conf


@contextlib.contextmanager
def local_cluster(root: Path, timeout: float = 60) -> Iterator[dict[str, str]]:
    """Start the cluster; yield the environment its clients need (SLURM_CONF)."""
    conf = write_conf(root)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    with munge():
        _run("slurmctld", "-f", str(conf), env=env)
        try:
            _run("slurmd", "-f", str(conf), env=env)
            try:
                deadline = time.monotonic() + timeout
                while "idle" not in _sinfo(env):
                    if time.monotonic() > deadline:
                        log = (root / "log" / "slurmd.log").read_text()[-2000:]
                        raise RuntimeError(f"the SLURM node did not come up:\n{log}")
                    time.sleep(0.5)
                yield {"SLURM_CONF": str(conf)}
            finally:
                # jobs first: their steps outlive slurmd otherwise
                subprocess.run(["scancel", "--partition", "seglab"], env=env, capture_output=True)
                time.sleep(1)
                _stop(root / "slurmd.pid")
                subprocess.run(
                    ["pkill", "-9", "-f", f"slurmstepd|{root}/spool"], capture_output=True
                )
        finally:
            _stop(root / "slurmctld.pid")


def _sinfo(env: dict) -> str:
    result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env)
    return result.stdout


def _stop(pid_file: Path) -> None:
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
        os.kill(int(pid_file.read_text().strip()), 15)
