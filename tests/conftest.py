"""Test isolation: every test starts with no Hydra global state and no mmengine singletons."""

from __future__ import annotations

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

SMALL_SYNTHETIC = [
    "dataset.synthetic.num_train=16",
    "dataset.synthetic.num_val=4",
    "dataset.synthetic.image_size=64",
    "train_dataloader.batch_size=4",
    "train_dataloader.num_workers=0",
    "train_dataloader.persistent_workers=false",
    "val_dataloader.num_workers=0",
    "val_dataloader.persistent_workers=false",
]


def _clear_global_state() -> None:
    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None  # a run's Hydra config outlives it otherwise
    from mmengine.logging import MessageHub, MMLogger
    from mmengine.registry import DefaultScope
    from mmengine.visualization import Visualizer

    for singleton in (Visualizer, MMLogger, MessageHub, DefaultScope):
        singleton._instance_dict.clear()


@pytest.fixture(autouse=True)
def isolated_state(tmp_path_factory, monkeypatch):
    """Hydra's and mmengine's process-wide state is reset; the synthetic data set is cached
    once per test session (SEGLAB_CACHE); each test runs in its own working directory."""
    monkeypatch.setenv("SEGLAB_CACHE", str(tmp_path_factory.getbasetemp() / "seglab-cache"))
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    _clear_global_state()
    yield
    _clear_global_state()


@pytest.fixture
def small_synthetic() -> list[str]:
    """Overrides for a synthetic run that takes seconds."""
    return ["experiment=demo", *SMALL_SYNTHETIC]
