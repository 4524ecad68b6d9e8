"""Checkpoints load with torch >= 2.6 without running what a file asks to run."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from seglab import checkpoint_loading
from tests.helpers.commands import TRAINED_RUN, error_line


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


# A pickle made only of names the loader allows that still reaches `eval`: `getattr` is the
# builtins module's attribute reader (getattr.__self__ is the module), and torch's own
# `_rebuild_from_type_v2` calls whatever it is handed.
class _BuiltinsModule:
    def __reduce__(self):
        return getattr, (getattr, "__self__")


class _Eval:
    def __reduce__(self):
        return getattr, (_BuiltinsModule(), "eval")


class _TensorThatRunsCode:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return torch._tensor._rebuild_from_type_v2, (_Eval(), torch.Tensor, (self.code,), {})


def allowlisted_hostile_checkpoint(path, marker) -> None:
    code = f"(__import__('pathlib').Path({str(marker)!r}).touch(), __import__('torch').zeros(1))[1]"
    torch.save({"state_dict": {"w": _TensorThatRunsCode(code)}, "meta": {}}, path)


def test_a_pickle_built_from_allowed_names_runs_nothing(tmp_path):
    marker = tmp_path / "it-ran"
    allowlisted_hostile_checkpoint(tmp_path / "evil.pth", marker)
    with pytest.raises(pickle.UnpicklingError, match="getattr"):
        CheckpointLoader.load_checkpoint(str(tmp_path / "evil.pth"))
    assert not marker.exists()


def test_getattr_names_only_history_buffer_statistics():
    assert checkpoint_loading.history_buffer_statistic(HistoryBuffer, "mean") is HistoryBuffer.mean
    for owner, name in [(HistoryBuffer, "__init__"), (getattr, "__self__"), (os, "system")]:
        with pytest.raises(pickle.UnpicklingError):
            checkpoint_loading.history_buffer_statistic(owner, name)


def test_statistics_methods_survive_the_round_trip(tmp_path):
    """mmengine's message hub as a Runner saves it: buffers whose statistics are pickled by name."""
    from mmengine.logging import MessageHub

    hub = MessageHub.get_instance("checkpoint-round-trip")
    hub.update_scalar("train/loss", 0.25)
    torch.save({"message_hub": hub.state_dict(), "meta": {"iter": 1}}, tmp_path / "hub.pth")
    loaded = CheckpointLoader.load_checkpoint(str(tmp_path / "hub.pth"))
    assert loaded["message_hub"]["log_scalars"]["train/loss"].mean() == 0.25


@pytest.mark.train
def test_resume_never_runs_the_config_text_a_checkpoint_carries(trained_run_copy, tmp_path):
    """mmengine's resume parses `meta['config']` as a Python config file, i.e. runs it."""
    from seglab.cli import main

    args, run_dir = TRAINED_RUN, trained_run_copy
    marker = tmp_path / "it-ran"
    (run_dir / "iter_20.pth").unlink()  # stopped before its end: resume=true has work to do
    (run_dir / "last_checkpoint").write_text(str(run_dir.resolve() / "iter_10.pth"))
    checkpoint = torch.load(run_dir / "iter_10.pth", map_location="cpu", weights_only=False)
    checkpoint["meta"]["config"] = f"__import__('pathlib').Path({str(marker)!r}).touch()\nx = 1\n"
    torch.save(checkpoint, run_dir / "iter_10.pth")
    main([*args, "resume=true"])
    assert not marker.exists()
    assert (
        "ignored the config text stored in the checkpoint"
        in sorted(run_dir.glob("*/*.log"))[-1].read_text()
    )


@pytest.mark.train
def test_a_refused_checkpoint_is_one_line(small_synthetic, tmp_path, capsys):
    from seglab.cli import main

    marker = tmp_path / "it-ran"
    allowlisted_hostile_checkpoint(tmp_path / "evil.pth", marker)
    with pytest.raises(SystemExit) as exit_:
        main([*small_synthetic, "train_cfg.max_iters=2", f"load_from={tmp_path / 'evil.pth'}"])
    assert exit_.value.code == 2 and not marker.exists()
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"seglab: error: {tmp_path / 'evil.pth'}: refused to load")


def test_infer_refuses_a_hostile_checkpoint_in_one_line(tmp_path, capsys):
    """`seglab infer` loads its checkpoint through mmseg's inferencer: still weights only."""
    import numpy as np
    from PIL import Image

    from seglab.cli import main

    marker = tmp_path / "it-ran"
    allowlisted_hostile_checkpoint(tmp_path / "evil.pth", marker)
    main(["export", "experiment=demo", f"out={tmp_path / 'config.py'}"])
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "image.png")
    line = error_line(
        [
            "infer",
            f"checkpoint={tmp_path / 'evil.pth'}",
            f"image={tmp_path / 'image.png'}",
            f"out={tmp_path / 'out'}",
        ],
        capsys,
    )
    assert line.startswith(f"seglab: error: {tmp_path / 'evil.pth'}: refused to load")
    assert not marker.exists()
