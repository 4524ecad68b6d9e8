"""Where an Optuna search keeps its study, and the leases that let many workers share it.

`hydra.sweeper.storage`:
- null: `sqlite:///SWEEP_DIR/optuna.db`, for one worker. The file is locked by the worker that
  searches it; a second launch of the same search is refused in one line (it would otherwise
  take the first one's running trials for orphans), as is a sqlite file on a network file system
  (sqlite's locks are not reliable there).
- a database URL (`postgresql://USER@HOST:PORT/DB`, SQLAlchemy's form; `postgresql://` uses
  psycopg, the `search` extra): any number of workers, on any machines. The password is not
  written in the URL: libpq reads PGPASSWORD (or ~/.pgpass), or the URL reads it with
  `${oc.env:VAR}`; a literal one is refused, since the command line shows it to every user of
  the machine.
- `journal:PATH`: Optuna's journal file, for a cluster whose machines share only a file system.
  It has no leases: a trial whose worker died stays RUNNING (README, "Searching over a cluster").

Leases are Optuna's heartbeats: a running trial's worker (and its job's process) records one
every `heartbeat_interval` seconds; a trial whose last one is older than `grace_period` is failed
by whichever worker looks next, and Optuna's RetryHeartbeatStaleTrialCallback queues a copy with
the same parameters, which the next free worker takes (its job resumes from the checkpoint the
first one left: the job directory is named after the first trial's number).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from seglab.errors import ConfigError
from seglab.run_dirs.files import OPTUNA_DB

if TYPE_CHECKING:  # optuna is imported where a study is used: it costs every run start-up
    import optuna

JOURNAL = "journal:"
SCHEMA_ATTEMPTS = 5
# the databases Optuna's RDBStorage serves (SQLAlchemy's dialects, `+driver` aside)
DATABASES = {"sqlite", "postgresql", "mysql", "mariadb", "oracle", "mssql"}
# the file systems whose locks sqlite cannot rely on (/proc/mounts types)
NETWORK_FILE_SYSTEMS = {
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "lustre",
    "gpfs",
    "beegfs",
    "ceph",
    "glusterfs",
    "fuse.sshfs",
    "fuse.glusterfs",
    "afs",
    "9p",
}
CLUSTER_HINT = (
    "share one database between workers: hydra.sweeper.storage=postgresql://USER@HOST:PORT/DB "
    "with the password in PGPASSWORD (README, 'Searching over a cluster')"
)


def storage_errors() -> tuple[type[BaseException], ...]:
    """What a study's storage raises when its database does not answer (Optuna wraps
    SQLAlchemy's errors in its own)."""
    import optuna
    import sqlalchemy

    return (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)


# when this process last found the study's database away (time.monotonic()); 0: never
_away_at = 0.0


def note_database_away() -> None:
    """The study's database did not answer this process (a lease's renewal, a worker's step)."""
    global _away_at
    _away_at = time.monotonic()


def may_judge_leases(storage: Any) -> bool:
    """Whether this process may fail trials whose leases look expired: not until the database
    has answered it for a whole grace period after being away. Every lease looks expired the
    moment a database comes back from an outage longer than the grace period; its holder
    renews it within one heartbeat interval, and a sibling must not fail it before then."""
    backend = getattr(storage, "_backend", storage)  # Optuna's cache in front of the RDBStorage
    interval = getattr(backend, "heartbeat_interval", None)
    if interval is None:  # no leases: nothing is judged by them
        return True
    grace = getattr(backend, "grace_period", None) or 2 * interval  # Optuna's default
    return time.monotonic() - _away_at > grace


def storage_url(storage: str | None, sweep_dir: str | Path) -> str:
    """The study's storage: the sweeper's `storage`, else a sqlite file in the sweep dir;
    `postgresql://` through psycopg (SQLAlchemy's own default driver is psycopg2)."""
    if not storage:
        return f"sqlite:///{Path(sweep_dir).resolve() / OPTUNA_DB}"
    if storage.startswith("postgresql://"):
        return "postgresql+psycopg://" + storage[len("postgresql://") :]
    return storage


def sqlite_file(url: str) -> Path | None:
    """The database file of a `sqlite:///` URL, else None."""
    if not url.startswith("sqlite:///"):
        return None
    return Path(url[len("sqlite:///") :])


def check_storage(url: str) -> None:
    """One line for a storage a search cannot use, before any trial starts."""
    key = f"hydra.sweeper.storage={_shown(url)}"
    if url.startswith(JOURNAL):
        if not url[len(JOURNAL) :]:
            raise ConfigError(f"{key}: expected journal:PATH (a file on the shared file system)")
        return
    parts = urlsplit(url)
    if parts.scheme.split("+")[0] not in DATABASES or not url.startswith(f"{parts.scheme}://"):
        raise ConfigError(
            f"{key}: expected a database URL (postgresql://USER@HOST:PORT/DB, "
            "mysql://USER@HOST/DB, sqlite:///PATH) or journal:PATH"
        )
    if sqlite_file(url) is not None:
        if not sqlite_file(url).name:
            raise ConfigError(f"{key}: expected sqlite:///PATH (a file)")
        fs = file_system(sqlite_file(url).parent)
        if fs in NETWORK_FILE_SYSTEMS:
            raise ConfigError(
                f"{key}: the file is on a network file system ({fs}), where sqlite's locks do not "
                f"hold; {CLUSTER_HINT}, or journal:PATH for a shared file system alone"
            )
        return
    if parts.password and "${" not in parts.password and "masked-" not in parts.password:
        raise ConfigError(
            f"{key}: the URL holds a password, which the command line shows to every user of "
            "this machine; leave it out and export PGPASSWORD (libpq reads it; or ~/.pgpass), "
            "or read it in the URL: USER:${oc.env:VAR}@HOST"
        )
    if parts.scheme.startswith("postgresql"):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise ConfigError(
                f"{key}: PostgreSQL's driver is not installed; pip install 'psycopg[binary]' "
                "(seglab's `search` extra)"
            ) from None


def check_leases(heartbeat_interval: int, grace_period: int | None) -> None:
    """One line for leases that cannot hold: a grace period a renewal cannot beat would let
    workers fail one another's live trials."""
    if heartbeat_interval < 1:
        raise ConfigError(
            f"hydra.sweeper.heartbeat_interval={heartbeat_interval}: expected seconds, at least 1"
        )
    if grace_period is not None and grace_period <= heartbeat_interval:
        raise ConfigError(
            f"hydra.sweeper.grace_period={grace_period}: expected more than "
            f"heartbeat_interval={heartbeat_interval} (a lease renewed every "
            f"{heartbeat_interval} s would expire between renewals), e.g. "
            f"hydra.sweeper.grace_period={3 * heartbeat_interval}, or null (twice the interval)"
        )


def _shown(url: str) -> str:
    from seglab.masking import mask_urls

    return mask_urls(url)


def file_system(folder: Path) -> str | None:
    """The type of the file system that holds `folder` (/proc/mounts), or None."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    return mount_type(mounts, folder.resolve())


def mount_type(mounts: list[str], path: Path) -> str | None:
    """The type of the mount in `mounts` (lines of /proc/mounts) nearest above `path`."""
    best, found = -1, None
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = str(path) == point or str(path).startswith(point.rstrip("/") + "/")
        if inside and len(point) > best:
            best, found = len(point), fields[2]
    return found


def open_storage(
    url: str, heartbeat_interval: int | None = None, grace_period: int | None = None
) -> Any:
    """The storage behind `url`; with `heartbeat_interval`, a database's trials carry leases
    and a trial whose lease expires is queued again (Optuna's heartbeat and retry callback)."""
    import optuna

    if url.startswith(JOURNAL):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(url[len(JOURNAL) :]))
    import sqlalchemy

    leases = {}
    if heartbeat_interval is not None:
        leases = dict(
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                inherit_intermediate_values=True
            ),
        )
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(url, **leases)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            # workers started together on an empty database all create Optuna's tables:
            # one wins, the others find them on their next try
            if attempt == SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(0.5 + random.random())
    raise AssertionError("unreachable")


def study_name(sweeper_cfg: Mapping[str, Any], sweep_dir: str | Path) -> str:
    """The study's name: `study_name` when given; else `seglab` in the sweep directory's own
    sqlite file, and the sweep directory's name in a shared database, so that two searches
    (other overrides, another model) never share a study by default."""
    if sweeper_cfg.get("study_name"):
        return sweeper_cfg["study_name"]
    return "seglab" if not sweeper_cfg.get("storage") else Path(sweep_dir).name


def load_study(sweeper_cfg: Mapping[str, Any], sweep_dir: str | Path) -> optuna.Study:
    """The sweep's study, with the sampler, pruner and leases its sweeper config names."""
    import optuna
    from hydra.utils import instantiate

    url = storage_url(sweeper_cfg.get("storage"), sweep_dir)
    storage = open_storage(
        url, sweeper_cfg.get("heartbeat_interval"), sweeper_cfg.get("grace_period")
    )
    return optuna.create_study(
        study_name=study_name(sweeper_cfg, sweep_dir),
        storage=storage,
        direction=sweeper_cfg.get("direction", "maximize"),
        sampler=instantiate(sweeper_cfg["sampler"]) if sweeper_cfg.get("sampler") else None,
        pruner=instantiate(sweeper_cfg["pruner"]) if sweeper_cfg.get("pruner") else None,
        load_if_exists=True,
    )


def worker_name() -> str:
    """How a worker is named in the study and the report: host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


@contextlib.contextmanager
def sole_worker(database: Path) -> Iterator[None]:
    """Held while this process searches the sqlite study in `database`: a second worker is
    refused in one line (the lock dies with its holder, even on SIGKILL)."""
    lock = database.with_name(database.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConfigError(
                f"hydra.sweeper.storage=sqlite:///{database}: this study is being searched by "
                f"{holder}, and a sqlite study takes one worker; wait for it to end, or "
                f"{CLUSTER_HINT}"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"worker {worker_name()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)


class Lease:
    """A running trial's lease: a heartbeat recorded now, then every `heartbeat_interval`
    seconds by a thread, until `end()` or until the trial is no longer running. Held by the
    worker from the moment it asks for the trial (its job may wait in a queue or take a while
    to start) and by the job's process while it trains (seglab.run.hooks.OptunaTrialHook)."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        self._stop = threading.Event()
        # a study's storage (Optuna's cache in front of an RDBStorage) or the RDBStorage
        heartbeat_interval = getattr(storage, "get_heartbeat_interval", None)
        interval = heartbeat_interval() if heartbeat_interval else None
        if interval is None:  # no leases (journal, or a storage opened without them)
            return
        storage.record_heartbeat(trial_id)
        threading.Thread(
            target=self._renew,
            args=(storage, trial_id, interval),
            name=f"seglab-lease-{trial_id}",
            daemon=True,
        ).start()

    def _renew(self, storage: Any, trial_id: int, interval: int) -> None:
        import optuna

        while not self._stop.wait(interval):
            try:
                if storage.get_trial(trial_id).state != optuna.trial.TrialState.RUNNING:
                    return
                storage.record_heartbeat(trial_id)
            except storage_errors():
                note_database_away()
                continue  # the database did not answer: the next beat tries again

    def end(self) -> None:
        self._stop.set()
