"""A throwaway PostgreSQL server for the tests and the search benchmark: Debian's `postgresql`
(.ci/run installs it), a cluster made by `initdb` in a temporary folder, listening on 127.0.0.1
and a free port, with a password-protected role; stopped and removed afterwards.

The server refuses to run as root: as root, the cluster belongs to the `postgres` user the
package creates (else `nobody`) and its commands run through `runuser`; as anyone else, it is
theirs. The password is handed out as an environment variable (PGPASSWORD, which libpq and so
psycopg read), never inside the storage URL, as seglab's README tells users to do.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROLE = "seglab"


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl (the newest installed release), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_release)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _release(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


def available() -> str | None:
    """Why a server cannot be started here, or None."""
    if binaries() is None:
        return "PostgreSQL is not installed (initdb missing; .ci/run installs Debian's postgresql)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[search]')"
    return None


@dataclass(frozen=True)
class Server:
    """A running server: its storage URL for seglab (no password in it) and the environment
    variable that carries the password."""

    url: str
    env: dict[str, str]
    data_dir: Path
    owner: str | None
    start_command: tuple[str, ...]

    def pause(self, seconds: float) -> None:
        """Stop the server for `seconds` (a restart, a network outage), then start it again."""
        pg_ctl = self.start_command[0]
        _run(self.owner, pg_ctl, "-D", str(self.data_dir), "-m", "fast", "stop")
        time.sleep(seconds)
        _run(self.owner, *self.start_command)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _owner() -> str | None:
    """The user the cluster runs as when we are root; None: the current user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) exists")


def _run(owner: str | None, *cmd: str) -> None:
    prefix = ["runuser", "-u", owner, "--"] if owner else []
    subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True)


@contextlib.contextmanager
def server(database: str = "optuna") -> Iterator[Server]:
    """A fresh server with role `seglab` (a random password) and an empty `database`."""
    bin_dir = binaries()
    assert bin_dir is not None, available()
    owner = _owner()
    # not under pytest's base temp: that folder is private to its user, the server's is not
    root = Path(tempfile.mkdtemp(prefix="seglab-postgres-"))
    data, password_file = root / "data", root / "password"
    password = secrets.token_urlsafe(16)
    password_file.write_text(password + "\n")
    if owner:
        info = pwd.getpwnam(owner)
        os.chown(root, info.pw_uid, info.pw_gid)
        os.chown(password_file, info.pw_uid, info.pw_gid)
    port = _free_port()
    try:
        _run(
            owner,
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            ROLE,
            "--auth=scram-sha-256",
            f"--pwfile={password_file}",
            "--no-sync",
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
        # the server's output goes to its log file: on a pipe, it would hold `pg_ctl`'s open
        log = root / "server.log"
        start = (str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options)
        start += ("-w", "start")
        _run(owner, *start)
        env = {"PGPASSWORD": password}
        _run(
            owner,
            "env",
            f"PGPASSWORD={password}",
            str(bin_dir / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            ROLE,
            database,
        )
        yield Server(
            url=f"postgresql+psycopg://{ROLE}@127.0.0.1:{port}/{database}",
            env=env,
            data_dir=data,
            owner=owner,
            start_command=start,
        )
    finally:
        if (data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                _run(owner, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)
