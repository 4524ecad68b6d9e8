"""`seglab report` over several sweeps, `seglab compare` over seeds, and report.html as a browser
renders it: on two real sweeps of three seeds each (learning rates 0.01 and 0.002), which save
their validation predictions."""

from __future__ import annotations

import csv
import json
import re
import shutil
import statistics
from pathlib import Path

import pytest
from PIL import Image
from scipy import stats

from seglab import REPO
from seglab.cli import main
from tests.conftest import folder_of_its_own
from tests.helpers import browser
from tests.helpers.commands import QUICK, sweep

pytestmark = pytest.mark.train

SEEDS = "randomness.seed=0,1,2"
DRAWN = ["+default_hooks.visualization.draw=true", "+default_hooks.visualization.interval=1"]
LRS = ("0.01", "0.002")
# the screenshot the README shows (docs/report-html.png is a copy of it)
SCREENSHOT = REPO / "outputs" / "test-screenshots" / "report-html.png"
needs_chromium = pytest.mark.skipif(
    browser.available() is not None, reason=browser.available() or ""
)


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> dict[str, Path]:
    """lr -> the sweep directory of `seglab -m QUICK lr=LR randomness.seed=0,1,2`, in a folder of
    their own (each test reads them from its own working directory)."""
    found = {}
    for lr in LRS:
        with folder_of_its_own(tmp_path_factory, "sweep") as folder:
            code, _ = sweep([*QUICK, *DRAWN, f"optim_wrapper.optimizer.lr={lr}", SEEDS])
            assert code == 0
            (found[lr],) = (folder / "outputs/sweeps").iterdir()
    return found


def final_mious(sweep_dir: Path) -> list[float]:
    """The sweep's final mIoU per seed, as its runs' metrics.json hold them."""
    return [json.loads(p.read_text())["mIoU"] for p in sorted(sweep_dir.glob("*/metrics.json"))]


def written(printed: str) -> list[Path]:
    (line,) = [line for line in printed.splitlines() if line.startswith("written: ")]
    return [Path(p) for p in line.removeprefix("written: ").split(", ")]


def test_a_report_of_two_sweeps_folds_seeds_into_a_confidence_interval(sweeps, capsys):
    main(["report", str(sweeps["0.01"]), str(sweeps["0.002"])])
    printed = capsys.readouterr().out
    files = written(printed)
    # several sweeps: a folder under outputs/reports named after what tells them apart
    (folder,) = {f.parent for f in files}
    assert folder.parent == Path("outputs/reports") and folder.name.startswith("lr=0.01+lr=0.002-")
    assert {f.name for f in files} == {"report.csv", "report.md", "report.png", "report.html"}
    with open(folder / "report.csv") as f:
        header, *table = list(csv.reader(f))
    assert header[:3] == ["from", "optim_wrapper.optimizer.lr", "randomness.seed"]
    assert sorted(row[0] for row in table) == ["lr=0.002"] * 3 + ["lr=0.01"] * 3
    # the seed table: mean ± std and Student's t interval of the mean, per learning rate
    for lr in LRS:
        values = final_mious(sweeps[lr])
        mean, std = statistics.mean(values), statistics.stdev(values)
        half = stats.t.ppf(0.975, len(values) - 1) * std / len(values) ** 0.5
        row = f"| {lr} | {mean:.2f} ± {std:.2f} | [{mean - half:.2f}, {mean + half:.2f}] | 3 |"
        assert row in printed

    # out=DIR: the files go there instead
    main(["report", str(sweeps["0.01"]), str(sweeps["0.002"]), "out=mine"])
    assert {f.parent for f in written(capsys.readouterr().out)} == {Path("mine")}


def test_compare_gives_the_difference_over_seeds_and_the_classes_that_moved(sweeps, capsys):
    main(["compare", str(sweeps["0.002"]), str(sweeps["0.01"])])
    printed = capsys.readouterr().out
    a, b = final_mious(sweeps["0.002"]), final_mious(sweeps["0.01"])
    welch = stats.ttest_ind(b, a, equal_var=False)
    change = statistics.mean(b) - statistics.mean(a)
    (verdict,) = [line for line in printed.splitlines() if line.startswith("B - A = ")]
    assert verdict.startswith(f"B - A = {change:+.2f} mIoU")
    if welch.pvalue == welch.pvalue:  # not NaN: both sides have a spread
        low, high = welch.confidence_interval(0.95)
        assert f"95% CI [{low:+.2f}, {high:+.2f}]" in verdict
        assert f"p = {welch.pvalue:.3g}" in verdict
        beyond = welch.pvalue < 0.05
        assert verdict.endswith("distinguishable from seed noise") == beyond
    assert "optim_wrapper.optimizer.lr: A 0.002, B 0.01" in printed
    # per-class IoU: B - A of the means over seeds, the largest difference first
    rows = re.findall(r"^\| (\w+) \| ([\d.]+) \| ([\d.]+) \| ([+-][\d.]+) \|$", printed, re.M)
    assert {r[0] for r in rows} == {"background", "square", "disc", "triangle"}
    moved = [abs(float(r[3])) for r in rows]
    assert moved == sorted(moved, reverse=True)
    background = [
        statistics.mean(
            json.loads(p.read_text())["IoU.background"]
            for p in sorted(sweeps[lr].glob("*/metrics.json"))
        )
        for lr in ("0.002", "0.01")
    ]
    (row,) = [r for r in rows if r[0] == "background"]
    assert float(row[3]) == pytest.approx(background[1] - background[0], abs=0.006)
    (md, table) = written(printed)
    assert md.name == "compare.md" and md.parent.parent == Path("outputs/reports")
    assert md.read_text() in printed and table.is_file()


def test_a_side_of_two_configurations_is_refused_and_the_selection_it_names_works(sweeps, capsys):
    both = Path("outputs/sweeps")
    for sweep_dir in sweeps.values():
        shutil.copytree(sweep_dir, both / sweep_dir.name)
    with pytest.raises(SystemExit):
        main(["compare", str(both), str(sweeps["0.01"])])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "holds more than one configuration (optim_wrapper.optimizer.lr is 0.002, 0.01)" in line
    suggested = line.split("`")[1].split()
    assert suggested[:3] == ["seglab", "compare", str(both)]
    main(suggested[1:])
    printed = capsys.readouterr().out
    assert f"A: {both} optim_wrapper.optimizer.lr=0.002" in printed, printed
    change = statistics.mean(final_mious(sweeps["0.01"])) - statistics.mean(
        final_mious(sweeps["0.002"])
    )
    assert f"B - A = {change:+.2f} mIoU" in printed


@needs_chromium
def test_report_html_renders_sorted_with_curves_bars_and_predictions_offline(sweeps, capsys):
    main(["report", str(sweeps["0.01"]), str(sweeps["0.002"]), "out=both"])
    capsys.readouterr()
    page = Path("both/report.html")
    text = page.read_text()
    # nothing from outside: every src and href is the page's own, and the policy forbids more
    assert not [u for u in re.findall(r'(?:src|href)="([^"]*)"', text) if not u.startswith("data:")]
    assert "default-src 'none'" in text

    shown = browser.render(page, "sort=-mIoU", screenshot=SCREENSHOT)
    assert shown.console == [], shown.console  # no script error, no blocked load
    assert 'data-ready="yes"' in shown.dom
    header = re.findall(r'<th class="sortable"[^>]*>([^<]*)</th>', shown.dom)
    column = header.index("mIoU ▼")
    cells = re.findall(r'<tr class="run" data-run="\d+">(.*?)</tr>', shown.dom)
    assert len(cells) == 6
    # the text cells: the run's number, then the header's columns
    mious = [float(re.findall(r"<td>([^<]*)</td>", row)[column + 1]) for row in cells]
    assert mious == sorted(mious, reverse=True)
    # each run's loss curve, and its validation (one point at the end: its curve and a dot)
    assert len(re.findall(r'class="curve"', shown.dom)) == 12
    # per-class bars and predictions of the three ticked runs (the best three), side by side
    ticked = {int(i) for i in re.findall(r'class="bar" data-run="(\d+)"', shown.dom)}
    assert ticked == {0, 1, 2}
    assert (
        len(re.findall(r'<img src="data:image/png;base64,[^"]+" alt="\d+\.jpg"', shown.dom)) == 12
    )
    screenshot = Image.open(SCREENSHOT).convert("L")
    assert screenshot.size == (1400, 2200) and screenshot.getextrema()[0] < 100

    # sorted by another column, ascending
    shown = browser.render(page, "sort=optim_wrapper.optimizer.lr")
    cells = re.findall(r'<tr class="run" data-run="\d+">(.*?)</tr>', shown.dom)
    column = header.index("optim_wrapper.optimizer.lr") + 1  # the cells after the run's number
    lrs = [re.findall(r"<td>([^<]*)</td>", row)[column] for row in cells]
    assert lrs == ["0.002"] * 3 + ["0.01"] * 3


def test_the_best_trials_command_of_an_optuna_search_trains_it_again(capsys):
    """An Optuna search's report: its history and importances drawn by Optuna, and the best
    trial's command, which trains the same configuration to the same mIoU."""
    code, summary = sweep(
        [
            *QUICK,
            "hydra/sweeper=seglab_optuna",
            "hydra.sweeper.pruner=null",
            "hydra.sweeper.n_trials=3",
            "optim_wrapper.optimizer.lr=tag(log,interval(1e-4,1e-2))",
            "optim_wrapper.optimizer.weight_decay=interval(0.0,0.001)",
        ]
    )
    assert code == 0
    (sweep_dir,) = Path("outputs/sweeps").iterdir()
    capsys.readouterr()
    main(["report", str(sweep_dir)])
    printed = capsys.readouterr().out
    for name in ("search_history.png", "search_importances.png"):
        image = Image.open(sweep_dir / name).convert("L")
        assert image.getextrema()[0] < 100, f"{name} is blank"
    html_text = (sweep_dir / "report.html").read_text()
    assert html_text.count('class="figure"') == 2
    best = max((j for j in summary["jobs"]), key=lambda j: j["mIoU"])
    (line,) = [x for x in printed.splitlines() if x.startswith("train the best trial again: ")]
    command = line.removeprefix("train the best trial again: ").split()
    assert command[:3] == ["python", "-m", "seglab"]
    main(command[3:])
    (run_dir,) = Path("outputs/runs").iterdir()
    assert json.loads((run_dir / "metrics.json").read_text())["mIoU"] == best["mIoU"]
