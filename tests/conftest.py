"""Test isolation: every test starts with no Hydra global state and no mmengine singletons, in a
working directory of its own; a short run trained once serves the tests that only need a run."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.version import VersionBase

from tests.helpers.commands import SMALL_SYNTHETIC, TRAINED_RUN, train


def _clear_global_state() -> None:
    GlobalHydra.instance().clear()
    # the version base a seglab run sets (1.3: no chdir into the job's directory) would hold
    # for every Hydra app started later in the process, as Hydra's launcher test suites are
    Singleton._instances.pop(VersionBase, None)
    HydraConfig.instance().cfg = None  # a run's Hydra config outlives it otherwise
    from mmengine.logging import MessageHub, MMLogger
    from mmengine.registry import DefaultScope
    from mmengine.visualization import Visualizer

    for singleton in (Visualizer, MMLogger, MessageHub, DefaultScope):
        singleton._instance_dict.clear()
    from seglab.masking import forget_secrets

    forget_secrets()  # an `${oc.env:...}` value of one test ("2") is no secret to the next


def _cache(tmp_path_factory) -> str:
    """One SEGLAB_CACHE per test session: the synthetic data set is generated once."""
    return str(tmp_path_factory.getbasetemp() / "seglab-cache")


@pytest.fixture(autouse=True)
def isolated_state(tmp_path_factory, monkeypatch):
    """Hydra's and mmengine's process-wide state is reset, SEGLAB_CACHE is the session's, and
    each test runs in its own working directory."""
    monkeypatch.setenv("SEGLAB_CACHE", _cache(tmp_path_factory))
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    _clear_global_state()
    yield
    _clear_global_state()


@pytest.fixture
def repository_configs():
    """Held by tests that add files to the repository's conf/ and experiments/ (`seglab
    import`) or compare those folders with the generator's output: one at a time, whichever
    pytest worker runs them. A file lock, because xdist's `--dist loadgroup` does not group
    tests under pytest 9 (it sets a node id field pytest 9 no longer reads)."""
    repo = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256(str(repo).encode()).hexdigest()[:12]
    lock = Path(tempfile.gettempdir()) / f"seglab-tests-repository-configs-{digest}.lock"
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture
def small_synthetic() -> list[str]:
    """Overrides for a synthetic run that takes seconds."""
    return ["experiment=demo", *SMALL_SYNTHETIC]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """The run directory of `seglab TRAINED_RUN` (20 iterations, checkpoints at 10 and 20),
    trained once per session in a directory of its own. Read it; to change it, take
    `trained_run_copy`."""
    with folder_of_its_own(tmp_path_factory, "trained-run"):
        return train(TRAINED_RUN).resolve()


@contextlib.contextmanager
def folder_of_its_own(tmp_path_factory, name: str) -> Iterator[Path]:
    """For a fixture wider than a test: runs made in a working directory of its own, with the
    session's SEGLAB_CACHE and Hydra's and mmengine's state reset before and after."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEGLAB_CACHE", _cache(tmp_path_factory))
        folder = tmp_path_factory.mktemp(name)
        patch.chdir(folder)
        _clear_global_state()
        try:
            yield folder
        finally:
            _clear_global_state()


@pytest.fixture
def trained_run_copy(trained_run) -> Path:
    """A copy of `trained_run` in this test's outputs/runs, under the name `seglab TRAINED_RUN`
    gives its run: the same command with `resume=true` continues it."""
    copy = Path("outputs/runs") / trained_run.name
    shutil.copytree(trained_run, copy)
    return copy
