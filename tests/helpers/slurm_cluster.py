"""A real single-node SLURM cluster on this machine, for the tests: munge, slurmctld, slurmd.

Needs Debian's slurm-wlm and munge (.ci/run installs them) and root (the daemons run as root,
munged as the munge user). Everything the cluster writes stays in one temporary folder, and
the daemons are stopped afterwards.

Stopping ends only what this cluster started, by process id: its jobs through scancel (and
waiting for them to end), then each daemon it started, from its pid file, with the processes
under it. What may outlive them, a job step's slurmstepd and its tasks, have neither a daemon for
parent nor a daemon's session (the daemons fork twice and each slurmstepd starts a session of its
own), so they are found by the environment every process of this cluster carries:
`SLURM_CONF=` this cluster's own slurm.conf, in its own temporary folder. Nothing is ended by
name: other users' munged, slurmstepd and jobs on the same machine are left alone.
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
MUNGED_PID = Path("/run/munge/munged.pid")


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
    """A munged for slurm's auth/munge, started unless one already answers on its socket (and
    then left running afterwards)."""
    if not MUNGE_KEY.is_file():
        _run("mungekey", "--create", "--keyfile", str(MUNGE_KEY))
    shutil.chown(MUNGE_KEY, "munge", "munge")
    MUNGE_KEY.chmod(0o400)
    for folder in ("/run/munge", "/var/lib/munge", "/var/log/munge"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.chown(folder, "munge", "munge")
    already = subprocess.run(["munge", "-n"], capture_output=True).returncode == 0
    if not already:
        _run("runuser", "-u", "munge", "--", "munged", f"--pid-file={MUNGED_PID}")
    try:
        yield
    finally:
        if not already:
            stop_started(MUNGED_PID, "munged")


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
                # jobs first, and slurmd while they end: their steps outlive slurmd otherwise
                subprocess.run(["scancel", "--partition", "seglab"], env=env, capture_output=True)
                _wait(lambda: not _squeue(env), timeout=30)
                stop_started(root / "slurmd.pid", "slurmd")
        finally:
            stop_started(root / "slurmctld.pid", "slurmctld")
            end(cluster_processes(conf))  # what is left of its jobs


def _sinfo(env: dict) -> str:
    result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env)
    return result.stdout


def _squeue(env: dict) -> str:
    """The cluster's jobs, one a line (none when slurmctld does not answer)."""
    result = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, env=env)
    return result.stdout.strip()


def _wait(done, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")  # a zombie has ended


def _processes() -> dict[int, tuple[str, int]]:
    """Every live process: (state, parent pid)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) and stat[0] not in "ZX":
            table[int(entry.name)] = stat
    return table


def started_by(pid: int) -> set[int]:
    """`pid` and its live descendants (what has been reparented is not among them)."""
    table = _processes()
    if pid not in table:
        return set()
    found, size = {pid}, 0
    while size != len(found):
        size = len(found)
        found |= {p for p, (_state, parent) in table.items() if parent in found}
    return found


def cluster_processes(conf: Path) -> set[int]:
    """The live processes started with `SLURM_CONF=conf` in their environment: the cluster's
    daemons, job steps and tasks (never this process, which sets it only in os.environ)."""
    marker = f"SLURM_CONF={conf}".encode()
    found = set()
    for pid in _processes():
        try:
            environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:  # gone, or not ours to read
            continue
        if marker in environment and pid != os.getpid():
            found.add(pid)
    return found


def end(processes: set[int], first: int | None = None, timeout: float = 10) -> None:
    """SIGTERM to `processes` (`first` before the others), then SIGKILL to those still there
    after `timeout` seconds."""
    for signal in (15, 9):
        for target in sorted(processes, key=lambda p: p != first):
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signal)
        processes = {p for p in processes if _alive(p)}
        if _wait(lambda left=processes: not any(_alive(p) for p in left), timeout):
            return


def stop_started(pid_file: Path, command: str, timeout: float = 10) -> None:
    """End the daemon `command` that wrote `pid_file`, then its descendants (slurmctld's
    slurmscriptd): SIGTERM, SIGKILL to what is left after `timeout` seconds. A pid file naming
    a process of another name (its pid taken again) ends nothing."""
    try:
        pid = int(pid_file.read_text().strip())
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return
    if name == command[:15]:  # the kernel keeps 15 characters of it
        end(started_by(pid), first=pid, timeout=timeout)
