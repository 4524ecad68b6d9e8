"""`seglab compare A B`: two configurations, each trained with one or more seeds, side by side.

A side is the runs of a directory (a run, a sweep over seeds), or the runs of one directory
whose settings match a selection (`seglab compare SWEEP model=fcn model=pspnet`). A side must be
one configuration: its runs may differ in their seed only. The final mIoU of its finished runs
gives the difference of the means with Welch's test over seeds (seed_statistics.py), then the
per-class IoU differences (means over seeds), largest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seglab.errors import ConfigError
from seglab.report.seed_statistics import Difference, difference
from seglab.report.tables import SEED_KEY, markdown, markdown_text, plain, setting, varying_keys


@dataclass
class Side:
    """One configuration: its name as the command line gave it and its runs."""

    name: str
    runs: list[dict]
    folder: str

    @property
    def finished(self) -> list[dict]:
        return [r for r in self.runs if r["mIoU"] is not None]


def same_value(written: str, value: str) -> bool:
    """Whether a selection's value is a run's (as `setting` writes it): as text, or as numbers
    (0.010, 1e-2 and 0.01 are one learning rate)."""
    if written == value:
        return True
    try:
        return float(written) == float(value)
    except ValueError:
        return False


def select(runs: list[dict], selection: str, folder: str) -> list[dict]:
    """The runs whose setting KEY has VALUE (`selection` is KEY=VALUE); none is refused in one
    line with the values KEY has there."""
    key, _, value = selection.partition("=")
    value = plain(value)
    chosen = [r for r in runs if same_value(value, setting(r, key))]
    if not chosen:
        values = sorted({setting(r, key) for r in runs} - {""})
        has = f"its runs have {key}={', '.join(values)}" if values else f"no run there sets {key}"
        raise ConfigError(
            f"compare: {folder} {selection}: no run matches it; {has} "
            f"(settings that vary there: {', '.join(varying_keys(runs)) or 'none'})"
        )
    return chosen


def check_one_configuration(side: Side) -> None:
    """A side whose runs differ in more than the seed is refused: its mean would mix them."""
    mixed = [k for k in varying_keys(side.runs) if k != SEED_KEY]
    if mixed:
        key = mixed[0]
        values = sorted({setting(r, key) for r in side.runs})
        raise ConfigError(
            f"compare: {side.name} holds more than one configuration ({key} is "
            f"{', '.join(values)}); expected runs that differ in their seed only: select one "
            f"side each, e.g. `seglab compare {side.folder} {key}={values[0]} {key}={values[-1]}`"
        )
    if not side.finished:
        raise ConfigError(
            f"compare: {side.name}: none of its {len(side.runs)} run(s) finished with a final "
            "mIoU; expected at least one finished run (seglab report DIR shows their status)"
        )


def per_class_differences(a: Side, b: Side) -> list[tuple[str, float, float, float]]:
    """(class, A's mean IoU, B's, B - A) for each class both sides measured, the largest
    difference first (a class absent from a side's validation has no IoU there)."""
    found = []
    classes = {c for r in a.finished + b.finished for c in r["per_class"]}
    for name in classes:
        means = []
        for side in (a, b):
            values = [r["per_class"].get(name) for r in side.finished]
            values = [v for v in values if v is not None]
            means.append(sum(values) / len(values) if values else None)
        if None not in means:
            found.append((name, means[0], means[1], means[1] - means[0]))
    return sorted(found, key=lambda row: (-abs(row[3]), row[0]))


def settings_apart(a: Side, b: Side) -> list[tuple[str, str, str]]:
    """(key, A's value, B's) for each setting in which the two configurations differ."""
    both = a.runs[:1] + b.runs[:1]
    return [
        (k, setting(a.runs[0], k), setting(b.runs[0], k))
        for k in varying_keys(both)
        if k != SEED_KEY
    ]


def comparison(a: Side, b: Side) -> tuple[Difference, str]:
    """The difference of the two sides' final mIoU and the text of the comparison (markdown)."""
    for side in (a, b):
        check_one_configuration(side)
    result = difference([r["mIoU"] for r in a.finished], [r["mIoU"] for r in b.finished])
    lines = [f"A: {markdown_text(a.name)}", f"B: {markdown_text(b.name)}"]
    apart = settings_apart(a, b)
    lines += [markdown_text(f"  {key}: A {va}, B {vb}") for key, va, vb in apart] or [
        "  (no setting differs between A and B)"
    ]
    for label, side, stats in (("A", a, result.a), ("B", b, result.b)):
        left_out = len(side.runs) - len(side.finished)
        spread = f" ± {stats.std:.2f}" if stats.std is not None else ""
        lines.append(
            f"{label}: mIoU {stats.mean:.2f}{spread} over {stats.n} seed(s)"
            + (f" ({left_out} run(s) without a final mIoU left out)" if left_out else "")
        )
    lines.append(result.verdict())
    text = "\n".join(lines) + "\n"
    classes = per_class_differences(a, b)
    if classes:
        table = [[n, f"{ia:.2f}", f"{ib:.2f}", f"{d:+.2f}"] for n, ia, ib, d in classes]
        text += "\nper-class IoU, largest difference first:\n\n"
        text += markdown(["class", "A IoU", "B IoU", "B - A"], table)
    return result, text


def sides(runs_of: list[tuple[str, list[dict]]], selections: list[str]) -> tuple[Side, Side]:
    """The two sides: two directories, or one directory and two selections in it. Sides that
    share a run are refused: a configuration compared with itself is no comparison."""
    if len(runs_of) == 2 and not selections:
        (na, ra), (nb, rb) = runs_of
        a, b = Side(na, ra, na), Side(nb, rb, nb)
    elif len(runs_of) == 1 and len(selections) == 2:
        ((name, runs),) = runs_of
        a, b = (Side(f"{name} {s}", select(runs, s, name), name) for s in selections)
    else:
        raise ConfigError(
            f"compare: {len(runs_of)} folder(s) and {len(selections)} selection(s); expected two "
            "folders (`seglab compare A B`) or one folder and two KEY=VALUE selections "
            "(`seglab compare SWEEP model=fcn_r50-d8 model=pspnet_r50-d8`)"
        )
    shared = {str(Path(r["run_dir"]).resolve()) for r in a.runs} & {
        str(Path(r["run_dir"]).resolve()) for r in b.runs
    }
    if shared:
        raise ConfigError(
            f"compare: A ({a.name}) and B ({b.name}) share {len(shared)} run(s), e.g. "
            f"{min(shared)}; expected two configurations with runs of their own"
        )
    return a, b
