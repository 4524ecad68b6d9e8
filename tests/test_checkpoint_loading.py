"""Checkpoints load with torch >= 2.6 without running what a file asks to run."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from seglab import checkpoint_loading  # noqa: F401  (registers the loader)


class RunsACommand:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickled_command_is_refused(tmp_path):
    marker = tmp_path / "it-ran"
    torch.save({"state_dict": {}, "meta": RunsACommand(str(marker))}, tmp_path / "evil.pth")
    with pytest.raises(pickle.UnpicklingError):
        CheckpointLoader.load_checkpoint(str(tmp_path / "evil.pth"))
    assert not marker.exists()


def test_mmengine_message_hub_state_loads(tmp_path):
    buffer = HistoryBuffer()
    buffer.update(0.5)
    torch.save(
        {"state_dict": {"w": torch.ones(2)}, "message_hub": {"loss": buffer}}, tmp_path / "ok.pth"
    )
    loaded = CheckpointLoader.load_checkpoint(str(tmp_path / "ok.pth"))
    assert loaded["message_hub"]["loss"].current() == 0.5
    assert torch.equal(loaded["state_dict"]["w"], torch.ones(2))
