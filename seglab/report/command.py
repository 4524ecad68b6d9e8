"""`seglab report DIR [DIR ...] [out=DIR]` and `seglab compare A B [out=DIR]`: read the runs,
write the files, say where.

One directory's report goes beside its runs (report.csv, report.md, report.png, report.html);
several directories' go to outputs/reports/NAME, NAME made of theirs; `out=DIR` puts either
anywhere. The report of an Optuna search adds its history, importances and best command.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from seglab.errors import ConfigError
from seglab.report import compare, html, search
from seglab.report.figures import plot
from seglab.report.runs import read_runs, study_place, sweep_dirs
from seglab.report.tables import (
    NAME_HASH,
    csv_cell,
    distinct_parts,
    failures,
    markdown,
    rows,
    seed_groups,
)
from seglab.run_dirs.files import OVERRIDES_FILE, REPORT_CSV, REPORT_MD, REPORT_PNG

REPORT_HTML = "report.html"
COMPARE_MD = "compare.md"
COMPARE_CSV = "compare.csv"
# where the report of several directories goes, under a name made of theirs
REPORTS = Path("outputs/reports")
NAME_LENGTH = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]+")


@dataclass
class Arguments:
    """A report or compare command line: its directories, KEY=VALUE selections, out= and
    storage= (the database of an Optuna search's study, named by the user, see
    runs.study_place)."""

    folders: list[Path]
    selections: list[str]
    out: Path | None = None
    storage: str | None = None


def split_args(command: str, args: Sequence[str]) -> Arguments:
    """The parts of a command line. A run directory's name may hold `=`: an argument that is a
    directory is one."""
    found = Arguments([], [])
    for arg in args:
        if Path(arg).is_dir():
            found.folders.append(Path(arg))
        elif arg.startswith("out="):
            found.out = Path(arg[4:] or ".")
            if found.out.exists() and not found.out.is_dir():
                raise ConfigError(f"{arg}: a file; expected a directory for the {command}'s files")
        elif arg.startswith("storage="):
            found.storage = arg.removeprefix("storage=")
        elif "=" in arg:
            found.selections.append(arg)
        else:
            raise ConfigError(f"{command} {arg}: no such directory; expected a sweep or run dir")
    if not found.folders:
        raise ConfigError(f"{command}: no directory given; expected a sweep or run directory")
    return found


def output_dir(folders: Sequence[Path], out: Path | None) -> Path:
    """`out`, else the one folder, else outputs/reports/NAME (NAME: the folders' names)."""
    if out is not None:
        target = out
    elif len(folders) == 1:
        target = folders[0]
    else:
        # what tells the folders apart, and a hash of their whole paths: unique, and short
        names = [NAME_HASH.sub("", f.resolve().name) for f in folders]
        told = _UNSAFE.sub("_", "+".join(distinct_parts(names)))[:NAME_LENGTH]
        digest = hashlib.sha1("\n".join(str(f.resolve()) for f in folders).encode()).hexdigest()
        target = REPORTS / f"{told}-{digest[:8]}"
    target.mkdir(parents=True, exist_ok=True)
    return target


def runs_of(
    folders: Sequence[Path], storage: str | None = None, once: bool = True
) -> list[tuple[str, list]]:
    """Each folder's runs, by the folder as given. With `once`, a run found under two of the
    folders (one inside the other, or the same folder twice) is kept under the first only:
    counted twice, it would pass for two seeds."""
    found, seen = [], set()
    for folder in folders:
        runs = read_runs(folder, storage)
        if not runs:
            raise FileNotFoundError(f"{folder}: no seglab runs (no {OVERRIDES_FILE}) below it")
        own = [r for r in runs if not once or str(Path(r["run_dir"]).resolve()) not in seen]
        seen.update(str(Path(r["run_dir"]).resolve()) for r in runs)
        found.append((str(folder), own))
    return found


def unread_studies(folders: Sequence[Path], storage: str | None) -> list[str]:
    """A line for each Optuna search whose study the report does not read (runs.study_place)."""
    places = [study_place(d, storage) for f in folders for d in sweep_dirs(f)]
    return [note for _, note in places if note]


def report(
    folders: str | Path | Sequence[str | Path],
    out: str | Path | None = None,
    storage: str | None = None,
) -> str:
    """Write the report of the runs under `folders` (one or several); return the printed
    text."""
    folders = [Path(folders)] if isinstance(folders, str | Path) else [Path(f) for f in folders]
    runs = [r for _, found in runs_of(folders, storage) for r in found]
    target = output_dir(folders, Path(out) if out is not None else None)
    header, table = rows(runs)
    with open(target / REPORT_CSV, "w", newline="") as f:
        csv.writer(f).writerows([list(map(csv_cell, row)) for row in [header, *table]])
    text = markdown(header, table)
    seeds = seed_groups(runs)
    if seeds is not None:
        text += "\n" + markdown(*seeds)
    failed = failures(runs)
    searches = search.summaries(folders, target, storage)
    text += "".join("\n" + s.text() for s in searches)
    text += "".join(f"\n{note}\n" for note in unread_studies(folders, storage))
    if failed:
        text += "\n" + failed
    (target / REPORT_MD).write_text(text)
    plot(runs, target / REPORT_PNG)
    sections = []
    if seeds is not None:
        sections.append(html.section("Seeds", html.table_html(*seeds)))
    for found in searches:
        body = "".join(html.figure_html(p.read_bytes(), p.name) for p in found.figures)
        body += html.pre(found.text())
        sections.append(html.section(f"Optuna search {found.sweep_dir.name}", body))
    if failed:
        sections.append(html.section("Failed runs", html.pre(failed)))
    names = [NAME_HASH.sub("", f.resolve().name) for f in folders]
    title = "seglab report: " + "; ".join(distinct_parts(names))
    (target / REPORT_HTML).write_text(html.page(title, runs, sections))
    written = [target / n for n in (REPORT_CSV, REPORT_MD, REPORT_PNG, REPORT_HTML)]
    written += [p for s in searches for p in s.figures]
    return f"{text}\nwritten: {', '.join(map(str, written))}\n"


def report_command(args: Sequence[str]) -> None:
    found = split_args("report", args)
    if found.selections:
        raise ConfigError(
            f"report {found.selections[0]}: not a directory; expected sweep or run directories, "
            "out=DIR and storage=URL"
        )
    try:
        print(report(found.folders, found.out, found.storage), end="")
    except FileNotFoundError as err:
        raise ConfigError(str(err)) from None


def compare_command(args: Sequence[str]) -> None:
    found = split_args("compare", args)
    try:
        runs = runs_of(found.folders, found.storage, once=False)
    except FileNotFoundError as err:
        raise ConfigError(str(err)) from None
    a, b = compare.sides(runs, found.selections)
    result, text = compare.comparison(a, b)
    target = output_dir(found.folders, found.out)
    (target / COMPARE_MD).write_text(text)
    with open(target / COMPARE_CSV, "w", newline="") as f:
        rows = [["class", "A IoU", "B IoU", "B - A"], *compare.per_class_differences(a, b)]
        csv.writer(f).writerows([list(map(csv_cell, row)) for row in rows])
    print(f"{text}\nwritten: {target / COMPARE_MD}, {target / COMPARE_CSV}")
