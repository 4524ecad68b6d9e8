"""`seglab report` on real run directories from short trainings: a grid, a failed job, seeds."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

from seglab.cli import main
from tests.helpers.commands import QUICK, sweep


def finished_run_dir(summary: dict, *overrides: str) -> str:
    """The run directory of the finished job with these overrides."""
    (found,) = [
        j["run_dir"]
        for j in summary["jobs"]
        if j["status"] == "finished" and set(overrides) <= set(j["overrides"])
    ]
    return found


@pytest.mark.train
def test_report_of_a_partly_failed_sweep_over_seeds(capsys):
    code, summary = sweep(
        [
            *QUICK,
            "optim_wrapper.optimizer.lr=0.004,abc",
            "randomness.seed=0,1",
        ]
    )
    assert code == 1 and summary["finished"] == 2 and summary["failed"] == 2
    (sweep_dir,) = Path("outputs/sweeps").iterdir()
    capsys.readouterr()
    main(["report", str(sweep_dir)])
    printed = capsys.readouterr().out

    with open(sweep_dir / "report.csv") as f:
        header, *table = list(csv.reader(f))
    assert header[:2] == ["optim_wrapper.optimizer.lr", "randomness.seed"]
    assert header[2:] == ["status", "mIoU", "best mIoU", "mAcc", "aAcc", "iter", "wall s"]
    assert [row[2] for row in table] == ["finished", "finished", "failed", "failed"]
    finished = {row[1]: float(row[3]) for row in table if row[2] == "finished"}
    for job in summary["jobs"]:
        if job["status"] == "finished":
            seed = next(o for o in job["overrides"] if o.startswith("randomness.seed="))
            assert finished[seed.split("=")[1]] == job["mIoU"]
    assert float(table[0][3]) >= float(table[1][3]), "best first"
    # mean ± std over the two seeds of lr=0.004
    assert "mIoU mean ± std" in printed and "| 0.004 |" in printed
    assert (sweep_dir / "report.md").read_text() in printed
    image = Image.open(sweep_dir / "report.png")
    assert image.size[0] > 1000 and image.getextrema() != ((255, 255),) * 3

    # a sweep still running: no summary yet, and a job that has not validated at its end
    (sweep_dir / "summary.json").unlink()
    (Path(finished_run_dir(summary, "randomness.seed=1")) / "metrics.json").unlink()
    main(["report", str(sweep_dir)])
    with open(sweep_dir / "report.csv") as f:
        statuses = sorted(row[2] for row in list(csv.reader(f))[1:])
    assert statuses == ["finished", "incomplete", "incomplete", "incomplete"]


@pytest.mark.train
def test_per_class_iou_reaches_metrics_json(small_synthetic):
    main([*small_synthetic, "train_cfg.max_iters=2", "train_cfg.val_interval=2"])
    (run_dir,) = Path("outputs/runs").iterdir()
    import json

    metrics = json.loads((run_dir / "metrics.json").read_text())
    for name in ("background", "square", "disc", "triangle"):
        assert f"IoU.{name}" in metrics and f"Acc.{name}" in metrics
    present = [metrics[f"IoU.{n}"] for n in ("background", "square", "disc", "triangle")]
    measured = [v for v in present if v is not None]  # mmseg's mIoU skips absent classes
    assert abs(sum(measured) / len(measured) - metrics["mIoU"]) < 0.05


def test_report_of_nothing_is_a_clear_error(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["report", str(tmp_path)])
    assert "no seglab runs" in capsys.readouterr().err
