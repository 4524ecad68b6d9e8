"""`seglab report` on real run directories from short trainings: a grid, a failed job, seeds."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from matplotlib.colors import to_hex
from PIL import Image

from seglab.cli import main
from seglab.report.figures import figure
from seglab.report.runs import read_runs
from seglab.report.tables import COLUMNS, rows
from seglab.run_dirs.files import TRACEBACK_FILE
from tests.helpers.commands import QUICK, TRAINED_RUN, sweep


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
    # each failed job: the last line of its error, and where its full traceback is
    failed_lines = [line for line in printed.splitlines() if "lr=abc" in line]
    assert len(failed_lines) == 2 and all(TRACEBACK_FILE in line for line in failed_lines)
    image = Image.open(sweep_dir / "report.png")
    assert image.size[0] > 1000 and image.getextrema() != ((255, 255),) * 3

    # a sweep still running: no summary yet (the failed jobs' tracebacks say they failed), and
    # a job that has not validated at its end
    (sweep_dir / "summary.json").unlink()
    (Path(finished_run_dir(summary, "randomness.seed=1")) / "metrics.json").unlink()
    main(["report", str(sweep_dir)])
    with open(sweep_dir / "report.csv") as f:
        statuses = sorted(row[2] for row in list(csv.reader(f))[1:])
    assert statuses == ["failed", "failed", "finished", "incomplete"]


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


def legend(fig) -> list[str]:
    (box,) = fig.legends
    return [t.get_text() for t in box.get_texts()]


def colour(line) -> str:
    return to_hex(line.get_color())


@pytest.mark.train
def test_report_of_runs_shows_what_varies_and_a_failed_runs_error(trained_run_copy, capsys):
    """outputs/runs: the trained run, and the same command with one setting written at its
    default value and a NaN loss, which fails at its first iteration. Only the setting that
    differs is a column; the failed run's error is a line with its traceback's file."""
    with pytest.raises(SystemExit):
        main([*TRAINED_RUN, "amp=false", "model.decode_head.loss_decode.loss_weight=nan"])
    (failed,) = set(Path("outputs/runs").iterdir()) - {trained_run_copy}
    trace = failed / TRACEBACK_FILE
    assert "FloatingPointError: loss is nan" in trace.read_text()
    capsys.readouterr()
    main(["report", "outputs/runs"])
    printed = capsys.readouterr().out
    with open("outputs/runs/report.csv") as f:
        header, *table = list(csv.reader(f))
    assert header == ["model.decode_head.loss_decode.loss_weight", *COLUMNS]
    assert [row[:2] for row in table] == [["1.0", "finished"], ["nan", "failed"]]
    (line,) = [line for line in printed.splitlines() if str(failed) in line]
    assert line.startswith("- 2: ") and "FloatingPointError: loss is nan at iteration 1" in line
    assert line.endswith(f"(traceback: {trace})")

    # the plot: one colour per run in every panel, every run in the legend, numbered as the
    # table, the best run named in its panel
    fig = figure(read_runs(Path("outputs/runs")))
    ax_loss, ax_miou, ax_class = fig.axes
    assert [name.split(":")[0] for name in legend(fig)] == ["1", "2"]
    assert "loss_weight=1" in legend(fig)[0] and "loss_weight=nan" in legend(fig)[1]
    (loss,) = ax_loss.lines  # the failed run logged no loss
    curve, *entries = ax_miou.lines
    assert colour(loss) == colour(curve) == colour(entries[0]) != colour(entries[1])
    assert {to_hex(bar.get_facecolor()) for bar in ax_class.patches} == {colour(loss)}
    assert legend(fig)[0] in ax_class.get_title().replace("\n", " ")  # wrapped to fit

    # a run that logged no loss: the panel says so instead of staying empty
    ax_loss, ax_miou, ax_class = figure(read_runs(failed)).axes
    assert not ax_loss.lines and "no loss logged" in " ".join(t.get_text() for t in ax_loss.texts)


@pytest.mark.train
def test_the_plot_of_many_runs_keeps_its_legend(trained_run):
    """13 runs (copies of one, without their checkpoints): a legend entry and a colour each."""
    for i in range(13):
        shutil.copytree(trained_run, f"many/{i}", ignore=shutil.ignore_patterns("*.pth"))
    fig = figure(read_runs(Path("many")))
    assert len(legend(fig)) == 13 and legend(fig)[12].startswith("13: ")
    (_, ax_miou, _) = fig.axes
    curves = [line for line in ax_miou.lines if len(line.get_xdata())]
    assert len(curves) == 13 and len({colour(line) for line in curves}) == 13


def copies(trained_run: Path, names: list[str], overrides: list[list[str]] | None = None) -> Path:
    """Copies of the trained run (without checkpoints) under runs/NAME; each copy's
    .hydra/overrides.yaml gets its own extra overrides, as if its command had them."""
    for i, name in enumerate(names):
        copy = Path("runs", name)
        shutil.copytree(trained_run, copy, ignore=shutil.ignore_patterns("*.pth"))
        if overrides:
            listed = copy / ".hydra" / "overrides.yaml"
            listed.write_text(listed.read_text() + "".join(f"- {o}\n" for o in overrides[i]))
    return Path("runs")


def inside(fig, artist) -> bool:
    """Whether `artist` is drawn within the figure's edges (none of it clipped)."""
    box = artist.get_window_extent(fig.canvas.get_renderer())
    edge = fig.bbox
    return edge.x0 <= box.x0 and box.x1 <= edge.x1 and edge.y0 <= box.y0 and box.y1 <= edge.y1


@pytest.mark.train
def test_the_legend_and_the_titles_lie_inside_the_figure(trained_run):
    """A run alone, named in the per-class panel's title by its long directory name, and 12 runs
    that differ in a long data_root: every title and the legend are inside the figure."""
    fig = figure(read_runs(trained_run))
    fig.canvas.draw()
    assert all(inside(fig, ax.title) for ax in fig.axes) and inside(fig, fig.legends[0])

    roots = [
        [f"dataset.data_root=/data/{'a-long-way-down/' * 6}set{i}/ADEChallengeData2016"]
        for i in range(12)
    ]
    fig = figure(read_runs(copies(trained_run, [f"r{i}" for i in range(12)], roots)))
    fig.canvas.draw()
    assert len(legend(fig)) == 12 and inside(fig, fig.legends[0])
    assert all(inside(fig, ax.title) for ax in fig.axes)


@pytest.mark.train
def test_legend_entries_hold_what_differs_written_as_in_the_table(trained_run):
    """The same command run twice (NAME, NAME-2): the entries hold the part of the directory
    names that differs, not the overrides both share. Runs that differ in a learning rate with
    many digits: the entry writes it as the table does."""
    name = trained_run.name
    fig = figure(read_runs(copies(trained_run, [name, f"{name}-2"])))
    tail = name.rsplit(",", 1)[-1]
    assert legend(fig) == [f"1: {tail}", f"2: {tail}-2"]

    shutil.rmtree("runs")
    lrs = [
        ["optim_wrapper.optimizer.lr=0.0012345678901234567"],
        ["optim_wrapper.optimizer.lr=0.01"],
    ]
    runs = read_runs(copies(trained_run, ["a", "b"], lrs))
    header, table = rows(runs)
    column = header.index("optim_wrapper.optimizer.lr")
    assert [f"lr={row[column]}" for row in table] == [
        e.split(": ", 1)[1] for e in legend(figure(runs))
    ]
    assert "lr=0.0012345678901234567" in legend(figure(runs))[0].replace("\n", "")


@pytest.mark.train
def test_a_single_validation_is_drawn_as_a_point_not_a_range(trained_run):
    """A run that validated once (its first validation left out of its scalars.json): the mIoU
    axis holds the point with half a point of room either side, and the iteration axis whole
    numbers."""
    runs = copies(trained_run, ["once"])
    (scalars,) = runs.glob("once/*/vis_data/scalars.json")
    lines = scalars.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if '"mIoU"' in line)
    scalars.write_text("\n".join(lines[:first] + lines[first + 1 :]) + "\n")
    (run,) = read_runs(runs)
    ((step, miou),) = run["miou_curve"]
    _, ax_miou, _ = figure([run]).axes
    low, high = ax_miou.get_ylim()
    assert low < miou < high and high - low <= 1.0 + 1e-9
    ticks = [t for t in ax_miou.get_xticks() if ax_miou.get_xlim()[0] <= t <= ax_miou.get_xlim()[1]]
    assert step in ticks and all(float(t).is_integer() for t in ticks)
