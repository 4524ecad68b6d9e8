"""Who holds a run's directory. Of `NAME`, `NAME-2`, ... a single run picks one and guards it:
- a new run takes the first that holds no earlier run, claimed with an exclusive lock
  (`flock` on `NAME/.seglab-lock`) that its process holds until the run ends, so two identical
  commands started together train into two directories;
- `resume=true` takes the newest of them and `resume=PATH` the one named; a run that another
  live process holds is refused in one line.
The kernel drops a lock when its process dies, so a killed run never blocks its own resume.
Only "would block" from `flock` means another process holds a directory; a file system without
`flock` (Lustre mounted without `-o flock`: ENOSYS), a lock file that cannot be opened (a
directory of that name) or a run directory that cannot be made (a read-only `outputs/`) is one
line, never a search on to the next name; and that search stops after MAX_NUMBERED names.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from typing import Any

from seglab.errors import ConfigError, os_reason
from seglab.run_dirs.files import HYDRA_DIR, LOCK_FILE, TRACEBACK_FILE

# files that do not make a directory a run: Hydra's `.hydra/` alone is what a command stopped
# by a config error leaves, and the corrected command takes that directory again (a traceback
# alone: a job that failed before it wrote anything)
NOT_A_RUN = {HYDRA_DIR, LOCK_FILE, TRACEBACK_FILE}


_held: dict[str, int] = {}  # run directory -> descriptor of the lock this process holds


# what `flock(LOCK_NB)` answers when another process holds the lock (EACCES: as fcntl's
# documentation allows); any other error is the file system's, not a run's
HELD = frozenset({errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES})


# a new run takes NAME, NAME-2, ... up to NAME-MAX_NUMBERED, then stops with one line
MAX_NUMBERED = 500


def holds_run(path: str | os.PathLike) -> bool:
    """Whether a run wrote into `path` (a log, a checkpoint, a config)."""
    return os.path.isdir(path) and bool(set(os.listdir(path)) - NOT_A_RUN)


def hold(path: str | os.PathLike) -> bool:
    """Take `path`'s lock for this process; False when another live process holds it.

    A directory that cannot be made, a lock file that cannot be opened, or a `flock` that
    fails for another reason than the lock being held (ENOSYS, ENOLCK, EIO...) is a
    ConfigError: going on to the next name would fail the same way, for ever."""
    key = os.path.abspath(path)
    if key in _held:
        return True
    lock = os.path.join(key, LOCK_FILE)
    try:
        os.makedirs(key, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            f"run directory {key}: cannot be made ({os_reason(err)}); make {os.path.dirname(key)} "
            "a folder you can write to, or start seglab in another directory (runs go to "
            "./outputs)"
        ) from None
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise ConfigError(
            f"run lock {lock}: cannot be opened ({os_reason(err)}); remove whatever is in its "
            "place, or make the run directory writable"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in HELD:
            return False
        raise ConfigError(
            f"run lock {lock}: flock failed ({os_reason(err)}): this file system cannot lock "
            "files; mount it with flock support (Lustre: -o flock) or start seglab in a "
            "directory on a local disk (runs go to ./outputs)"
        ) from None
    _held[key] = fd
    return True


def drop_if_not_a_run(path: str | os.PathLike) -> None:
    """Remove the directory of a run this process holds and that a refusal stopped before
    it wrote anything (Hydra's `.hydra/`, the lock): a refused command leaves no directory
    that `seglab report` would list as a run. A directory that holds anything else stays."""
    key = os.path.abspath(path)
    if key not in _held or holds_run(key):
        return
    shutil.rmtree(os.path.join(key, HYDRA_DIR), ignore_errors=True)
    for name in (TRACEBACK_FILE, LOCK_FILE):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(key, name))
    release(key)
    with contextlib.suppress(OSError):  # not empty: something appeared meanwhile, kept
        os.rmdir(key)


def release(path: str | os.PathLike) -> None:
    """Give up this process's lock on `path` (the run ended)."""
    fd = _held.pop(os.path.abspath(path), None)
    if fd is not None:
        os.close(fd)  # closing the last descriptor of the file drops the flock


def release_all() -> None:
    for path in list(_held):
        release(path)


def choose_run_dir(root: str, name: str, resume: Any) -> str:
    """The directory a single run with this name trains in (see the module docstring)."""
    base = os.path.join(root, name)
    if isinstance(resume, str) and resume.lower() not in ("true", "false"):
        return _given_run(resume)
    candidates = _numbered(base)
    if resume:
        earlier = [p for p in candidates if holds_run(p)]
        if not earlier:
            return base  # nothing to resume: train.py says so, naming the nearest runs
        newest = earlier[-1]
        if not hold(newest):
            raise ConfigError(
                f"resume=true: {newest} is being trained by another process right now; "
                "wait for it to end (or stop it), or drop resume=true to start a new run"
            )
        return newest
    for path in candidates:
        if os.path.abspath(path) in _held:
            return path  # this process claimed it earlier (the value is read more than once)
    for n in range(1, MAX_NUMBERED + 1):  # the first that holds no run and that no other
        path = base if n == 1 else f"{base}-{n}"  # process claimed meanwhile
        if not holds_run(path) and hold(path):
            return path
    raise ConfigError(
        f"run directory {base}: {name} to {name}-{MAX_NUMBERED} all hold earlier runs or are "
        "being trained; move or remove old runs, or continue the newest with resume=true"
    )


def _numbered(base: str) -> list[str]:
    """`base`, `base-2`, ... up to the last that exists."""
    paths = [base]
    n = 2
    while os.path.isdir(f"{base}-{n}"):
        paths.append(f"{base}-{n}")
        n += 1
    return paths


def _given_run(path: str) -> str:
    if not holds_run(path):
        raise ConfigError(
            f"resume={path!r}: not a run directory; expected a directory a seglab run wrote "
            "(outputs/runs/NAME), or resume=true to continue the run of these overrides"
        )
    if not hold(path):
        raise ConfigError(
            f"resume={path!r}: the run is being trained by another process right now; wait "
            "for it to end (or stop it)"
        )
    return os.path.abspath(path)
