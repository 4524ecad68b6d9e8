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
from pathlib import Path

from seglab.errors import ConfigError
from seglab.report import compare, html, search
from seglab.report.figures import plot
from seglab.report.runs import read_runs
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


def split_args(command: str, args: Sequence[str]) -> tuple[list[Path], list[str], Path | None]:
    """(the directories, the KEY=VALUE selections, out=) of a command line. A run directory's
    name may hold `=`: an argument that is a directory is one."""
    folders, selections, out = [], [], None
    for arg in args:
        if Path(arg).is_dir():
            folders.append(Path(arg))
        elif arg.startswith("out="):
            out = Path(arg[4:])
            if out.exists() and not out.is_dir():
                raise ConfigError(f"{arg}: a file; expected a directory for the {command}'s files")
        elif "=" in arg:
            selections.append(arg)
        else:
            raise ConfigError(f"{command} {arg}: no such directory; expected a sweep or run dir")
    if not folders:
        raise ConfigError(f"{command}: no directory given; expected a sweep or run directory")
    return folders, selections, out


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


def runs_of(folders: Sequence[Path]) -> dict[str, list[dict]]:
    """Each folder's runs, by the folder as given."""
    found = {}
    for folder in folders:
        runs = read_runs(folder)
        if not runs:
            raise FileNotFoundError(f"{folder}: no seglab runs (no {OVERRIDES_FILE}) below it")
        found[str(folder)] = runs
    return found


def report(folders: str | Path | Sequence[str | Path], out: str | Path | None = None) -> str:
    """Write the report of the runs under `folders` (one or several); return the printed
    text."""
    folders = [Path(folders)] if isinstance(folders, str | Path) else [Path(f) for f in folders]
    runs = [r for found in runs_of(folders).values() for r in found]
    target = output_dir(folders, Path(out) if out is not None else None)
    header, table = rows(runs)
    with open(target / REPORT_CSV, "w", newline="") as f:
        csv.writer(f).writerows([list(map(csv_cell, row)) for row in [header, *table]])
    text = markdown(header, table)
    seeds = seed_groups(runs)
    if seeds is not None:
        text += "\n" + markdown(*seeds)
    failed = failures(runs)
    searches = search.summaries(folders, target)
    text += "".join("\n" + s.text() for s in searches)
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
    folders, selections, out = split_args("report", args)
    if selections:
        raise ConfigError(
            f"report {selections[0]}: not a directory; expected sweep or run directories and "
            "out=DIR"
        )
    try:
        print(report(folders, out), end="")
    except FileNotFoundError as err:
        raise ConfigError(str(err)) from None


def compare_command(args: Sequence[str]) -> None:
    folders, selections, out = split_args("compare", args)
    try:
        found = runs_of(folders)
    except FileNotFoundError as err:
        raise ConfigError(str(err)) from None
    a, b = compare.sides(found, selections)
    result, text = compare.comparison(a, b)
    target = output_dir(folders, out)
    (target / COMPARE_MD).write_text(text)
    with open(target / COMPARE_CSV, "w", newline="") as f:
        csv.writer(f).writerows(
            [
                ["class", "A IoU", "B IoU", "B - A"],
                *compare.per_class_differences(a, b),
            ]
        )
    print(f"{text}\nwritten: {target / COMPARE_MD}, {target / COMPARE_CSV}")
