"""Hydra's own launcher contract suites on seglab's GPU pool launcher, as Hydra's joblib and
submitit plugins run them in their tests: jobs, their configs, overrides, working and output
directories, custom resolvers, job names. The pool is fake: devices [0,1] only set each job's
CUDA_VISIBLE_DEVICES, no GPU is touched. Every job is a Python process of its own."""

from __future__ import annotations

import pytest
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite

from hydra_plugins.seglab_plugins.gpu_pool_launcher import GPUPoolLauncher

pytestmark = pytest.mark.processes

FAKE_POOL = "hydra.launcher.devices=[0,1]"


def test_discovery() -> None:
    assert GPUPoolLauncher.__name__ in [x.__name__ for x in Plugins.instance().discover(Launcher)]


@pytest.mark.parametrize("launcher_name, overrides", [("gpu_pool", [FAKE_POOL])])
class TestGPUPoolLauncher(LauncherTestSuite):
    """Hydra's launcher suite, run in this process (the jobs in theirs)."""


@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [({}, ["-m", "hydra/job_logging=disabled", "hydra/launcher=gpu_pool", FAKE_POOL])],
)
class TestGPUPoolLauncherIntegration(IntegrationTestSuite):
    """Hydra's integration suite: a small Hydra app in a process of its own."""
