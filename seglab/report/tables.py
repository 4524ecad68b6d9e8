"""The report's tables: a column for each setting that differs between the runs, the results,
seeds folded into a mean, its spread and confidence interval, and a line per failed run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from seglab.masking import looks_secret
from seglab.report.runs import SEARCH_COLUMNS
from seglab.report.seed_statistics import LEVEL, interval
from seglab.run_dirs.names import name_order, short_keys

SEED_KEY = "randomness.seed"
COLUMNS = ["status", "mIoU", "best mIoU", "mAcc", "aAcc", "iter", "wall s"]
# the column naming the sweep or folder of each run, in a report of several
SOURCE = "from"
NAME_HASH = re.compile(r"-[0-9a-f]{8}$")


def setting(run: dict, key: str) -> str:
    """The value `key` had in `run`: its override as printed, else its group choice or its
    value in the run's composed config ("" where it has none; secrets are not read)."""
    if key in run["overrides"]:
        return plain(run["overrides"][key])
    if key in run["choices"]:
        return str(run["choices"][key])
    if looks_secret(key):
        return ""
    node: Any = run["config"]
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return ""
        node = node[part]
    return plain(node)


def plain(value: Any) -> str:
    """A value as one text whether it was typed (`false`, `0.50`) or read from a config
    (False, 0.5), so that equal values compare equal."""
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value if isinstance(value, str) else json.dumps(value)


def varying_keys(runs: list[dict]) -> list[str]:
    """The overridden keys whose value differs between the runs, in the order run names use
    (group choices, the telling sections, other keys, housekeeping)."""
    keys = sorted({k for r in runs for k in r["overrides"]}, key=name_order)
    return [k for k in keys if len({setting(r, k) for r in runs}) > 1]


def ordered(runs: list[dict]) -> list[dict]:
    """Best final mIoU first (the order of the table, the legend and the failure lines)."""
    return sorted(runs, key=lambda r: (r["mIoU"] is None, -(r["mIoU"] or 0)))


def rows(runs: list[dict]) -> tuple[list[str], list[list[Any]]]:
    """The table: an Optuna search's trial and worker, the settings that vary, then the
    results; best final mIoU first."""
    keys = varying_keys(runs)
    search = [c for c in SEARCH_COLUMNS if len({r.get(c) for r in runs}) > 1 or c == "trial"]
    search = search if any("trial" in r for r in runs) else []
    # a report of several sweeps or run folders: which one each run is in
    named = source_names(runs)
    sources = [SOURCE] if len(set(named.values())) > 1 else []
    header = [*sources, *search, *keys, *COLUMNS]
    return header, [
        [named[str(r.get("source"))] for _ in sources]
        + [r.get(c) for c in search]
        + [setting(r, k) for k in keys]
        + [r[c] for c in COLUMNS]
        for r in ordered(runs)
    ]


def source_names(runs: list[dict]) -> dict[str, str]:
    """The folder each run was found under -> its name in a report of several: the parts of
    its name the others lack (`lr=0.01` of two sweeps that differ in it)."""
    folders = sorted({str(r.get("source")) for r in runs})
    # a sweep's name ends in a hash of its overrides: not what tells two apart to a reader
    names = [NAME_HASH.sub("", Path(f).name) for f in folders]
    return dict(zip(folders, distinct_parts(names), strict=True))


def seed_groups(runs: list[dict], level: float = LEVEL) -> tuple[list[str], list[list]] | None:
    """The final mIoU over seeds, when a seed is swept: a row per configuration (the settings
    that vary but the seed), best mean first, with mean ± std and the confidence interval of
    the mean (Student's t; one seed has none)."""
    keys = [k for k in varying_keys(runs) if k != SEED_KEY]
    if SEED_KEY not in varying_keys(runs):
        return None
    groups = configurations(runs, keys)
    table = []
    for group, members in groups.items():
        values = [r["mIoU"] for r in members if r["mIoU"] is not None]
        if values:
            table.append([*group, *interval(values, level).cells(), len(values)])
    table.sort(key=lambda row: -float(row[len(keys)].split()[0]))
    return [*keys, "mIoU mean ± std", f"{level:.0%} CI", "seeds"], table


def configurations(runs: list[dict], keys: list[str]) -> dict[tuple[str, ...], list[dict]]:
    """The runs grouped by their values of `keys` (a configuration: its runs over seeds)."""
    groups: dict[tuple[str, ...], list[dict]] = {}
    for r in runs:
        groups.setdefault(tuple(setting(r, k) for k in keys), []).append(r)
    return groups


def cell_text(value: Any) -> str:
    """A table cell as text (nothing for None)."""
    return "" if value is None else str(value)


def markdown(header: list[str], table: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(map(markdown_cell, header)) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(markdown_cell(v) for v in row) + " |" for row in table]
    return "\n".join(lines) + "\n"


def markdown_text(text: str) -> str:
    """Text from a run (a value, a directory, an error) as Markdown shows it: HTML in it (a
    Markdown viewer would render it) written as text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def markdown_cell(value: Any) -> str:
    """A cell as Markdown shows it and nothing more: a `|` does not end it, HTML is text."""
    return markdown_text(cell_text(value)).replace("|", "\\|").replace("\n", " ")


def csv_cell(value: Any) -> Any:
    """A cell a spreadsheet shows as text: a value starting with =, +, -, @ (that is no number)
    would be read as a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


def labels(runs: list[dict]) -> list[str]:
    """A run's name in the plot: its varying settings as the table writes them, keys cut to
    their shortest unambiguous tail; where no setting varies, the parts of its directory's path
    that the other runs' lack (its directory's name for a single run)."""
    keys = varying_keys(runs)
    if keys:
        tails = short_keys(keys)
        return [
            ", ".join(f"{t}={setting(r, k)}" for t, k in zip(tails, keys, strict=True))
            for r in runs
        ]
    if len(runs) == 1:
        return [runs[0]["run_dir"].name.replace(",", ", ")]  # spaced: wrapped between overrides
    return distinct_parts([r["run_dir"].as_posix() for r in runs])


def distinct_parts(paths: list[str]) -> list[str]:
    """Each path as the parts of it (between `/` and `,`) that not every other path holds."""
    parts = [re.split(r"[/,]", path) for path in paths]
    shared = set.intersection(*map(set, parts)) if len(parts) > 1 else set()
    return [", ".join(p for p in own if p not in shared) or paths[i] for i, own in enumerate(parts)]


def failures(runs: list[dict]) -> str:
    """One line per failed run: its number in the table, its directory, the last line of its
    error and where its full traceback is."""
    lines = [
        markdown_text(
            f"- {i}: {r['run_dir']}: {r['error']}"
            + (f" (traceback: {r['traceback']})" if r["traceback"] else "")
        )
        for i, r in enumerate(ordered(runs), 1)
        if r["status"] in ("failed", "unreadable")
    ]
    return "failed runs:\n" + "\n".join(lines) + "\n" if lines else ""
