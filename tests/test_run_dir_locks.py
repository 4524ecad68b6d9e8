"""A run directory's lock on file systems that cannot lock: one line naming the lock and what to
do, never a search on through NAME-2, NAME-3, ... (one command once made 365,631 directories in
20 s where `flock` answered ENOSYS, as Lustre without `-o flock` does)."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

import pytest

from seglab.errors import ConfigError
from seglab.run_dirs.files import LOCK_FILE
from seglab.run_dirs.lock import choose_run_dir, release_all
from tests.helpers.commands import error_line

# the run directory `seglab experiment=demo` takes
COMMAND = ["experiment=demo"]
RUN_DIR = Path("outputs/runs/experiment=demo")


@pytest.fixture(autouse=True)
def released():
    """What a test's run directories hold is given back, and the locks the test took itself."""
    taken: list[int] = []
    yield taken
    release_all()
    for fd in taken:
        os.close(fd)


def lock_elsewhere(run_dir: Path, taken: list[int]) -> None:
    """Hold `run_dir`'s lock as another process would: a descriptor of its own (flock locks
    belong to an open file, so this process's next open of it is refused, as another's is)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    taken.append(fd)


@pytest.fixture
def no_flock(monkeypatch):
    """`flock` as Lustre without `-o flock` answers it (no such file system here). Past a few
    calls it fails the test instead: the code before the fix searched on for ever."""
    calls = []

    def flock(fd: int, operation: int) -> None:
        calls.append(fd)
        assert len(calls) < 20, "searched on through numbered names after ENOSYS"
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))

    monkeypatch.setattr(fcntl, "flock", flock)
    return calls


def test_a_lock_another_process_holds_still_means_the_next_name(released):
    lock_elsewhere(Path("runs/NAME"), released)
    assert choose_run_dir("runs", "NAME", resume=False) == "runs/NAME-2"


def test_flock_answering_enosys_is_one_error_and_one_directory(no_flock):
    with pytest.raises(ConfigError) as error:
        choose_run_dir("runs", "NAME", resume=False)
    message = str(error.value)
    assert "\n" not in message
    assert str(Path("runs/NAME", LOCK_FILE).resolve()) in message
    assert "Function not implemented, ENOSYS" in message and "-o flock" in message
    assert [p.name for p in Path("runs").iterdir()] == ["NAME"]


def test_flock_answering_enosys_reaches_the_user_as_one_line(no_flock, capsys):
    line = error_line(COMMAND, capsys)
    assert f"{RUN_DIR.resolve() / LOCK_FILE}: flock failed (Function not implemented" in line
    assert [p.name for p in RUN_DIR.parent.iterdir()] == [RUN_DIR.name]


def test_resume_on_a_file_system_without_flock_is_one_line(no_flock, capsys):
    RUN_DIR.mkdir(parents=True)
    (RUN_DIR / "config.py").write_text("")  # an earlier run
    line = error_line([*COMMAND, "resume=true"], capsys)
    assert "flock failed (Function not implemented" in line


def test_the_search_for_a_free_name_is_bounded(monkeypatch, released):
    monkeypatch.setattr("seglab.run_dirs.lock.MAX_NUMBERED", 3)
    for name in ("NAME", "NAME-2", "NAME-3"):
        lock_elsewhere(Path("runs", name), released)
    with pytest.raises(ConfigError, match=r"NAME to NAME-3 all hold earlier runs"):
        choose_run_dir("runs", "NAME", resume=False)
    assert not Path("runs/NAME-4").exists()


def test_a_lock_file_that_is_a_directory_is_one_line(capsys):
    (RUN_DIR / LOCK_FILE).mkdir(parents=True)
    line = error_line(COMMAND, capsys)
    assert f"{RUN_DIR.resolve() / LOCK_FILE}: cannot be opened (Is a directory" in line


def test_outputs_that_is_not_a_folder_is_one_line(capsys):
    Path("outputs").write_text("not a folder\n")
    line = error_line(COMMAND, capsys)
    assert f"run directory {RUN_DIR.resolve()}: cannot be made (" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a folder whatever its mode")
def test_read_only_outputs_is_one_line(capsys):
    RUN_DIR.parent.mkdir(parents=True)
    RUN_DIR.parent.chmod(0o555)
    try:
        line = error_line(COMMAND, capsys)
    finally:
        RUN_DIR.parent.chmod(0o755)
    assert "cannot be made (Permission denied, EACCES)" in line
