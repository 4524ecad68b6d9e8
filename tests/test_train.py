"""Training on the synthetic data, end to end through `seglab` and mmengine's Runner."""

from __future__ import annotations

import json

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

from seglab.cli import main
from tests.helpers.commands import FEW_ITERS, TRAINED_RUN, train

pytestmark = pytest.mark.train


def test_short_run_writes_its_run_directory(trained_run):
    run_dir = trained_run

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["iter"] == 20
    assert 0 <= metrics["mIoU"] <= 100 and {"aAcc", "mAcc"} <= set(metrics)

    # the exported config is plain mmseg: it loads alone and names no seglab hook
    exported = Config.fromfile(str(run_dir / "config.py"))
    assert exported.work_dir == str(run_dir.resolve())
    assert "custom_hooks" not in exported
    assert exported.train_cfg.max_iters == 20
    assert (run_dir / ".hydra" / "overrides.yaml").is_file()

    # the last checkpoint loads again (torch's weights-only unpickler) into the exported model
    assert (run_dir / "last_checkpoint").read_text().strip().endswith("iter_20.pth")
    register_all_modules()
    model = MODELS.build(exported.model)
    checkpoint = load_checkpoint(model, str(run_dir / "iter_20.pth"), strict=True)
    assert checkpoint["meta"]["iter"] == 20
    assert torch.equal(
        model.state_dict()["decode_head.conv_seg.weight"],
        checkpoint["state_dict"]["decode_head.conv_seg.weight"],
    )


def test_a_second_run_never_overwrites_the_first(small_synthetic):
    args = [*small_synthetic, *FEW_ITERS, "train_cfg.max_iters=10"]
    first = train(args)
    first_files = {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()}
    second = train(args)
    assert second.name == f"{first.name}-2"
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()} == first_files


def test_resume_continues_in_the_same_directory(trained_run_copy):
    stopped = trained_run_copy  # as if stopped between its checkpoints at 10 and 20
    (stopped / "iter_20.pth").unlink()
    (stopped / "last_checkpoint").write_text(str(stopped.resolve() / "iter_10.pth"))
    main([*TRAINED_RUN, "resume=true"])
    logs = sorted(stopped.glob("*/*.log"))
    assert len(logs) == 2, "the resumed run logs into the same run directory"
    assert "resumed epoch: 0, iter: 10" in logs[-1].read_text()
    assert (stopped / "iter_20.pth").is_file()


@pytest.mark.slow
@pytest.mark.extended  # over four minutes on 2 cores
def test_demo_learns_the_shapes():
    """`make demo`'s run: mIoU >= 70 (mmseg reports percent) on the validation split."""
    run_dir = train(["experiment=demo"])
    assert json.loads((run_dir / "metrics.json").read_text())["mIoU"] >= 70


@pytest.mark.parametrize("workers", [0, 2])
def test_a_resumed_run_ends_where_the_uninterrupted_run_ends(small_synthetic, workers):
    """Interrupted after its checkpoint at iteration 10 and resumed, a run has the weights and
    metrics, bit for bit, of the same run trained without a stop (dropout included)."""
    args = [
        *small_synthetic,
        *FEW_ITERS,
        f"train_dataloader.num_workers={workers}",
        f"train_dataloader.persistent_workers={workers > 0}",
    ]
    run_dir = train(args)
    uninterrupted = torch.load(run_dir / "iter_20.pth", map_location="cpu", weights_only=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())

    # the state a run killed after its checkpoint at iteration 10 leaves behind
    (run_dir / "iter_20.pth").unlink()
    (run_dir / "metrics.json").unlink()
    (run_dir / "last_checkpoint").write_text(str(run_dir / "iter_10.pth"))
    main([*args, "resume=true"])

    resumed = torch.load(run_dir / "iter_20.pth", map_location="cpu", weights_only=False)
    assert resumed["state_dict"].keys() == uninterrupted["state_dict"].keys()
    different = [
        key
        for key, value in uninterrupted["state_dict"].items()
        if not torch.equal(value, resumed["state_dict"][key])
    ]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics
