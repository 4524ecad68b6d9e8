"""logger=tensorboard, checked by reading the event files back with TensorBoard's own reader;
and several trackers at once (`logger=[wandb,tensorboard]`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mmengine.config import Config

from seglab.cli import main
from tests.helpers.commands import QUICK, sweep, train

pytestmark = pytest.mark.train

RUN = [
    *QUICK,
    "logger=tensorboard",
    "train_cfg.max_iters=6",
    "train_cfg.val_interval=3",
    "default_hooks.logger.interval=2",
    "default_hooks.checkpoint.interval=3",
]
LITERAL = "s3cr3t-tensorboard-123"
ENV_SECRET = "env-s3cr3t-tensorboard-456"
SECRETS = [f"+custom.password={LITERAL}", "+custom.origin=${oc.env:SEGLAB_TEST_SECRET}"]


def events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    return accumulator.Reload()


def text(accumulator, tag: str) -> str:
    (event,) = accumulator.Tensors(f"{tag}/text_summary")
    return event.tensor_proto.string_val[0].decode()


def scalars_json(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] from mmengine's own vis_data/scalars.json (every session)."""
    found: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(run_dir.glob("*/vis_data/scalars.json")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            for key, value in row.items():
                if key != "step":
                    found.setdefault(key, []).append((row["step"], value))
    return found


def test_events_hold_the_runs_scalars_and_its_masked_config(monkeypatch):
    monkeypatch.setenv("SEGLAB_TEST_SECRET", ENV_SECRET)
    run_dir = train([*RUN, *SECRETS])
    tensorboard = events(run_dir / "tensorboard")
    expected = scalars_json(run_dir)
    assert set(tensorboard.Tags()["scalars"]) == set(expected)
    for tag, rows in expected.items():
        logged = [(e.step, e.value) for e in tensorboard.Scalars(tag)]
        assert [s for s, _ in logged] == [s for s, _ in rows], tag
        assert [v for _, v in logged] == pytest.approx([v for _, v in rows], rel=1e-5), tag
    assert [e.step for e in tensorboard.Scalars("train/loss")] == [2, 4, 6]
    assert [e.step for e in tensorboard.Scalars("val/mIoU")] == [3, 6]
    for name in ("background", "square", "disc", "triangle"):
        assert [e.step for e in tensorboard.Scalars(f"val/IoU.{name}")] == [3, 6]

    config, overrides = text(tensorboard, "config"), text(tensorboard, "overrides")
    assert "max_iters: 6" in config and "logger=tensorboard" in overrides
    assert "password" not in config and "origin: masked-" in config
    assert "+custom.password=masked-" in overrides
    assert LITERAL not in config + overrides and ENV_SECRET not in config + overrides
    hparams = tensorboard.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in hparams
    for path in (run_dir / "tensorboard").iterdir():
        data = path.read_bytes()
        assert LITERAL.encode() not in data and ENV_SECRET.encode() not in data, path


def test_a_resumed_run_appends_to_its_events_without_the_stale_ones():
    run_dir = train(RUN)
    (run_dir / "iter_6.pth").unlink()  # stopped before its end: resume from iteration 3
    main([*RUN, "resume=true"])
    assert len(list((run_dir / "tensorboard").iterdir())) == 2, "one event file a session"
    tensorboard = events(run_dir / "tensorboard")
    # the first session's events after iteration 3 are purged, the second's replace them
    second = max(run_dir.glob("*/vis_data/scalars.json"))
    rows = [json.loads(line) for line in second.read_text().splitlines()]
    losses = [(r["step"], r["train/loss"]) for r in rows if "train/loss" in r]
    logged = [(e.step, e.value) for e in tensorboard.Scalars("train/loss")]
    assert [s for s, _ in logged] == [2, 4, 6] and [s for s, _ in losses] == [4, 6]
    assert [v for _, v in logged[1:]] == pytest.approx([v for _, v in losses], rel=1e-5)
    assert [e.step for e in tensorboard.Scalars("val/mIoU")] == [3, 6]


def test_a_sweeps_jobs_are_runs_side_by_side():
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    code, summary = sweep([*QUICK, "logger=tensorboard", "optim_wrapper.optimizer.lr=0.004,0.002"])
    assert code == 0
    (sweep_dir,) = Path("outputs/sweeps").iterdir()
    # what `tensorboard --logdir outputs/sweeps/NAME` reads
    multiplexer = EventMultiplexer().AddRunsFromDirectory(str(sweep_dir))
    multiplexer.Reload()
    jobs = {Path(j["run_dir"]).name for j in summary["jobs"]}
    assert set(multiplexer.Runs()) == {f"{job}/tensorboard" for job in jobs}
    for run in multiplexer.Runs():
        assert [e.step for e in multiplexer.Scalars(run, "val/mIoU")] == [4]


def test_a_list_of_loggers_logs_to_each(monkeypatch):
    """`logger=[wandb,tensorboard]`: Hydra picks both options of the group."""
    for var in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(Path.cwd()))  # no ~/.netrc with a key: wandb offline
    args = [a for a in RUN if not a.startswith("logger=")]
    run_dir = train([*args, "logger=[wandb,tensorboard]", "wandb.log_images=0"])
    assert [e.step for e in events(run_dir / "tensorboard").Scalars("val/mIoU")] == [3, 6]
    assert list(run_dir.glob("*/vis_data/wandb/offline-run-*/run-*.wandb"))
    exported = Config.fromfile(run_dir / "config.py")
    assert "wandb" not in exported and "tensorboard" not in exported, "seglab's keys stay out"
