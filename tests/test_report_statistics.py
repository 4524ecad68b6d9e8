"""The statistics of `seglab report` and `seglab compare` against textbook values, the commands'
one-line errors, and report.html with values a run directory should not be trusted with."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest
import yaml

from seglab.cli import main
from seglab.report.seed_statistics import difference, interval
from tests.helpers import browser
from tests.helpers.commands import error_line


def test_the_interval_of_a_mean_is_students():
    found = interval([1.0, 2.0, 3.0])
    # mean 2, sd 1, t(0.975, 2 df) = 4.302653: 2 ± 4.302653 / sqrt(3)
    assert (found.mean, found.std) == (2.0, 1.0)
    assert found.low == pytest.approx(2 - 4.302653 / math.sqrt(3), abs=1e-5)
    assert found.high == pytest.approx(2 + 4.302653 / math.sqrt(3), abs=1e-5)
    assert found.cells() == ["2.00 ± 1.00", "[-0.48, 4.48]"]
    one = interval([40.0])
    assert one.cells() == ["40.00 (one seed)", ""] and one.low is None


def welch(a: list[float], b: list[float]) -> tuple[float, float]:
    """Welch's t and degrees of freedom, from their formulas."""
    va, vb = (sum((x - sum(s) / len(s)) ** 2 for x in s) / (len(s) - 1) for s in (a, b))
    sa, sb = va / len(a), vb / len(b)
    t = (sum(b) / len(b) - sum(a) / len(a)) / math.sqrt(sa + sb)
    df = (sa + sb) ** 2 / (sa**2 / (len(a) - 1) + sb**2 / (len(b) - 1))
    return t, df


def test_two_configurations_are_compared_by_welchs_test():
    from scipy import stats

    a, b = [40.1, 41.3, 39.8, 40.6], [42.0, 43.1, 42.4]
    found = difference(a, b)
    t, df = welch(a, b)
    assert found.p_value == pytest.approx(2 * stats.t.sf(abs(t), df))
    half = stats.t.ppf(0.975, df) * (found.difference / t)
    assert (found.low, found.high) == pytest.approx(
        (found.difference - half, found.difference + half)
    )
    assert found.distinguishable and "distinguishable from seed noise" in found.verdict()
    # overlapping spreads: a difference of 0.5 is within seed noise
    close = difference([40.0, 41.0, 42.0], [40.5, 41.5, 42.5])
    assert not close.distinguishable and "not distinguishable" in close.verdict()
    assert close.low < 0 < close.high


def test_one_seed_a_side_is_not_tested_and_the_line_says_how_many_to_run():
    found = difference([40.0], [42.0, 41.0])
    assert found.p_value is None and found.distinguishable is None
    assert "not tested" in found.verdict() and "randomness.seed=0,1,2" in found.verdict()
    same = difference([40.0, 40.0], [41.0, 41.0])
    assert same.p_value is None and "no spread" in same.verdict()


def fake_run(folder: Path, overrides: list[str], miou: float) -> Path:
    """A run directory as a run leaves it (what report reads of it), written by hand: what a
    directory from elsewhere may hold."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra/overrides.yaml").write_text(yaml.safe_dump(overrides))
    (folder / ".hydra/config.yaml").write_text(yaml.safe_dump({"train_cfg": {"max_iters": 4}}))
    metrics = {"iter": 4, "mIoU": miou, "IoU.<b>road</b>": miou}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    scalars = folder / "20261204_000000/vis_data/scalars.json"
    scalars.parent.mkdir(parents=True)
    # a run that diverged logs a NaN loss, as mmengine writes it (json.dumps allows NaN)
    losses = [1.5, 1.2, miou if math.isnan(miou) else 0.9]
    records = [{"loss": v, "step": i + 1} for i, v in enumerate(losses)]
    scalars.write_text("".join(json.dumps(r) + "\n" for r in [*records, {"mIoU": miou, "step": 4}]))
    return folder


@pytest.mark.processes
@pytest.mark.skipif(browser.available() is not None, reason=browser.available() or "")
def test_report_html_shows_a_runs_values_as_text_and_runs_none_of_them():
    crafted = "</script><img src=x onerror=document.title='pwned'>"
    fake_run(Path("outputs/runs/a"), [f"+note={crafted}"], 50.0)
    fake_run(Path("outputs/runs/b"), ["+note=plain"], 40.0)
    fake_run(Path("outputs/runs/c"), ["+note=diverged"], float("nan"))
    main(["report", "outputs/runs"])
    text = Path("outputs/runs/report.html").read_text()
    assert "</script><img" not in text
    shown = browser.render(Path("outputs/runs/report.html"))
    assert shown.console == [], shown.console
    assert "<title>seglab report: runs</title>" in shown.dom  # not changed by the value
    assert not re.search(r"<img[^>]+src=\"x\"", shown.dom)
    assert "&lt;/script&gt;&lt;img src=x" in shown.dom  # the value, shown as text
    assert "&lt;b&gt;road&lt;/b&gt;" in shown.dom
    # the diverged run's NaN: its row is there, its loss up to the NaN, every other curve
    assert len(re.findall(r'<tr class="run"', shown.dom)) == 3
    loss, miou = 3, 2  # the NaN run validated NaN: no mIoU point to draw
    assert len(re.findall(r'class="curve" data-run="\d+"', shown.dom)) == loss + miou


def test_report_md_and_csv_keep_a_runs_values_as_text():
    """A value with `|` stays in its Markdown cell, HTML in it is not rendered by a Markdown
    viewer, and a spreadsheet opening report.csv reads no formula."""
    formula = '=HYPERLINK("http://example.com/x","click")'
    fake_run(Path("outputs/runs/a"), ["+note=a|b|c", "+html=<i>x</i>"], 50.0)
    fake_run(Path("outputs/runs/b"), [f"+note={formula}", "+html=-0.5"], 40.0)
    main(["report", "outputs/runs"])
    lines = Path("outputs/runs/report.md").read_text().splitlines()
    assert "| &lt;i&gt;x&lt;/i&gt; | a\\|b\\|c |" in lines[2]
    with open("outputs/runs/report.csv") as f:
        rows = list(csv.reader(f))
    assert rows[2][:2] == ["-0.5", "'" + formula]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["report", "nowhere"], "report nowhere: no such directory; expected a sweep or run"),
        (["report", "outputs", "x=1"], "report x=1: not a directory"),
        (["compare", "outputs"], "compare: 1 folder(s) and 0 selection(s); expected two"),
        (["compare", "outputs", "out=report.md"], "out=report.md: a file; expected a directory"),
        (["compare", "outputs", "outputs", "+note=x"], "expected two folders"),
    ],
)
def test_bad_report_and_compare_arguments_are_one_line(args, expected, capsys):
    fake_run(Path("outputs/runs/a"), ["+note=x"], 50.0)
    Path("report.md").write_text("mine\n")
    line = error_line(args, capsys)
    assert expected in line
    assert Path("report.md").read_text() == "mine\n"


def test_compare_of_a_side_without_the_selected_value_names_it(capsys):
    fake_run(Path("outputs/runs/a"), ["+note=x"], 50.0)
    fake_run(Path("outputs/runs/b"), ["+note=y"], 40.0)
    line = error_line(["compare", "outputs/runs", "note=x", "note=z"], capsys)
    assert line.endswith(
        "compare: outputs/runs note=z: no run matches it; its runs have note=x, y "
        "(settings that vary there: note)"
    )


def test_a_run_whose_files_cannot_be_read_is_a_row_that_says_why(capsys):
    """What a directory from elsewhere, or a run still writing, may hold: the other runs are
    reported, each unreadable one is a line naming its file."""
    fake_run(Path("outputs/runs/good"), ["+note=good"], 50.0)
    fake_run(Path("outputs/runs/list"), ["+note=list"], 40.0)
    Path("outputs/runs/list/metrics.json").write_text("[1, 2]")
    fake_run(Path("outputs/runs/bytes"), ["+note=bytes"], 40.0)
    Path("outputs/runs/bytes/.hydra/overrides.yaml").write_bytes(b"- +note=\xff\xfe\n")
    fake_run(Path("outputs/runs/yaml"), ["+note=yaml"], 40.0)
    Path("outputs/runs/yaml/.hydra/overrides.yaml").write_text("- [unclosed\n")
    # still writing: a half line at the end of scalars.json, a folder not named by mmengine
    writing = fake_run(Path("outputs/runs/writing"), ["+note=writing"], 45.0)
    (scalars,) = writing.glob("*/vis_data/scalars.json")
    scalars.write_text(scalars.read_text() + '{"loss": 0.8, "st')
    scalars.parent.parent.rename(writing / "notatime")
    image = Path("outputs/runs/good/20261204_000000/vis_data/vis_image/val_0.jpg_4.png")
    image.parent.mkdir(parents=True)
    image.write_bytes(b"not a png")
    main(["report", "outputs/runs"])
    printed = capsys.readouterr().out
    with open("outputs/runs/report.csv") as f:
        rows = list(csv.reader(f))[1:]
    finished = sorted(row[0] for row in rows if row[1] == "finished")
    assert finished == ["good", "writing"]
    assert [row[1] for row in rows].count("unreadable") == 3
    lines = [x for x in printed.splitlines() if x.startswith("- ")]
    assert len(lines) == 3
    for name in ("list", "bytes", "yaml"):
        assert any(f"outputs/runs/{name}: " in x for x in lines), name
    assert "outputs/runs/list/metrics.json: expected a mapping" in printed


def test_a_study_in_a_database_the_sweep_names_is_read_only_when_the_command_names_it(capsys):
    """A sweep directory from elsewhere names where its study is: the report connects to no
    database the command line did not name, and creates no file."""
    import optuna

    sweep_dir = Path("outputs/sweeps/search")
    fake_run(sweep_dir / "trial-0", ["+note=x"], 50.0)
    elsewhere = Path("elsewhere/study.db").resolve()
    url = f"sqlite:///{elsewhere}"
    multirun = {"hydra": {"sweeper": {"_target_": "x.SeglabOptunaSweeper", "storage": url}}}
    (sweep_dir / "multirun.yaml").write_text(yaml.safe_dump(multirun))
    main(["report", str(sweep_dir)])
    printed = capsys.readouterr().out
    assert not elsewhere.parent.exists(), "the report made the database's folder"
    assert "its study is in the database the sweep names" in printed
    assert "storage=URL" in printed

    elsewhere.parent.mkdir()
    study = optuna.create_study(study_name="search", storage=url, direction="maximize")
    study.enqueue_trial({"lr": 0.1})
    trial = study.ask({"lr": optuna.distributions.FloatDistribution(0.01, 1.0)})
    study.tell(trial, 61.5)
    main(["report", str(sweep_dir), f"storage={url}"])
    printed = capsys.readouterr().out
    assert "its study is in" not in printed
    assert "| 61.5 |" in printed and "Optuna search search: 1 complete trial(s)" in printed


def test_compare_refuses_a_configuration_against_itself(capsys):
    fake_run(Path("outputs/runs/a"), ["+note=x", "randomness.seed=0"], 50.0)
    fake_run(Path("outputs/runs/b"), ["+note=x", "randomness.seed=1"], 51.0)
    line = error_line(["compare", "outputs/runs", "outputs/runs"], capsys)
    assert "share 2 run(s)" in line
    line = error_line(["compare", "outputs/runs", "note=x", "note=x"], capsys)
    assert "share 2 run(s)" in line


def test_a_selection_matches_a_number_however_written_and_names_the_values_there(capsys):
    for name, lr, seed in (
        ("a", "0.01", 0),
        ("b", "0.01", 1),
        ("c", "0.002", 0),
        ("d", "0.002", 1),
    ):
        fake_run(
            Path(f"outputs/runs/{name}"), [f"+lr={lr}", f"randomness.seed={seed}"], 40.0 + seed
        )
    main(["compare", "outputs/runs", "lr=1e-2", "lr=.002"])
    printed = capsys.readouterr().out
    assert "A: mIoU 40.50 ± 0.71 over 2 seed(s)" in printed
    line = error_line(["compare", "outputs/runs", "lr=0.01", "lr=0.02"], capsys)
    assert line.endswith(
        "compare: outputs/runs lr=0.02: no run matches it; its runs have lr=0.002, 0.01 "
        "(settings that vary there: lr, randomness.seed)"
    )


def test_a_report_of_nested_folders_counts_each_run_once(capsys):
    for name, seed in (("a", 0), ("b", 1)):
        fake_run(Path(f"outputs/runs/x/{name}"), ["+note=x", f"randomness.seed={seed}"], 40.0)
    main(["report", "outputs/runs/x", "outputs/runs", "out=both"])
    printed = capsys.readouterr().out
    assert "\n| 40.00 ± 0.00 | [40.00, 40.00] | 2 |\n" in printed  # two seeds, not four
