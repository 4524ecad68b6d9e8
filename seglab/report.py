"""`seglab report DIR`: compare the runs under a sweep or run directory without wandb.

Reads each run's own files (works on a sweep that is still running or partly failed):
`.hydra/overrides.yaml` (what it ran) and `.hydra/config.yaml` (the values it did not
override), `metrics.json` (its last validation), mmengine's `*/vis_data/scalars.json` (loss and
validation curves), the sweep's `summary.json` (failed and pruned jobs) and a failed job's
`traceback.txt`. An Optuna search is read from its study: every trial of every worker as it
stands, with its trial number and worker, even where its directory is on another machine.
Prints a table, best first, with a column for each setting whose value differs
between the runs (a key one run overrides and another leaves at the same default does not
count), then one line per failed run with its error; writes report.csv, report.md and
report.png (one colour per run in every panel).
"""

from __future__ import annotations

import csv
import json
import re
import statistics
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from omegaconf.errors import OmegaConfBaseException

from seglab.masking import looks_secret, mask_overrides, mask_text
from seglab.overrides import as_mapping
from seglab.run_dirs.files import (
    HYDRA_FILE,
    JOB_CONFIG_FILE,
    METRICS_FILE,
    MULTIRUN_FILE,
    OVERRIDES_FILE,
    REPORT_CSV,
    REPORT_MD,
    REPORT_PNG,
    SCALARS_GLOB,
    SUMMARY_FILE,
    TRACEBACK_FILE,
)
from seglab.run_dirs.names import name_order, short_keys
from seglab.run_dirs.resume import validated_at_length

SEED_KEY = "randomness.seed"
COLUMNS = ["status", "mIoU", "best mIoU", "mAcc", "aAcc", "iter", "wall s"]
# an Optuna search's columns: the trial, and the worker that ran it (where several did)
SEARCH_COLUMNS = ["trial", "worker"]
SWEEP_FILES = (SUMMARY_FILE, MULTIRUN_FILE)
# characters a line of a legend entry (three side by side) and of a panel's title holds
LEGEND_WIDTH, TITLE_WIDTH = 44, 46
# the least room above and below the validation values: one point is not drawn as a range
MIOU_MARGIN = 0.5


def find_runs(root: Path) -> list[Path]:
    """Every Hydra job directory at or below `root` (each has .hydra/overrides.yaml)."""
    return sorted({p.parent.parent for p in root.glob(f"**/{OVERRIDES_FILE}")})


def read_run(run_dir: Path, summary_jobs: dict[str, dict]) -> dict[str, Any]:
    overrides = yaml.safe_load((run_dir / OVERRIDES_FILE).read_text()) or []
    config = yaml.safe_load((run_dir / JOB_CONFIG_FILE).read_text()) or {}
    hydra_file = run_dir / HYDRA_FILE
    hydra = yaml.safe_load(hydra_file.read_text()) if hydra_file.is_file() else None
    choices = ((hydra or {}).get("hydra") or {}).get("runtime", {}).get("choices") or {}
    train_cfg = config.get("train_cfg") or {}
    metrics_file = run_dir / METRICS_FILE
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    loss, miou, wall = [], [], 0.0
    for scalars in sorted(run_dir.glob(SCALARS_GLOB)):
        records = [
            _unprefixed(json.loads(line))
            for line in scalars.read_text().splitlines()
            if line.strip()
        ]
        loss += [(r["step"], r["loss"]) for r in records if "loss" in r]
        miou += [(r["step"], r["mIoU"]) for r in records if "mIoU" in r]
        started = datetime.strptime(scalars.parent.parent.name, "%Y%m%d_%H%M%S").timestamp()
        wall += max(0.0, scalars.stat().st_mtime - started)
    job = summary_jobs.get(str(run_dir.resolve()), {})
    error, trace = _error(run_dir, job)
    if error is not None:  # a message names values as they resolved: secrets masked
        error = mask_text(error, map(str, overrides))
    status = job.get("status") or ("failed" if error else None)
    if status is None:
        status = "finished" if validated_at_length(metrics, train_cfg) else "incomplete"
    return {
        "run_dir": run_dir,
        # as printed: secrets masked, `+`/`~` left out (`+x=1` and a default x=1 are alike)
        "overrides": as_mapping(mask_overrides(overrides)),
        "config": config,
        "choices": {k: v for k, v in choices.items() if "/" not in k},  # not hydra/launcher ...
        "status": status,
        "error": error if status == "failed" else None,
        "traceback": trace if status == "failed" else None,
        "mIoU": metrics.get("mIoU") if status == "finished" else None,
        "best mIoU": round(max(v for _, v in miou), 2) if miou else None,
        "mAcc": metrics.get("mAcc"),
        "aAcc": metrics.get("aAcc"),
        "iter": metrics.get("iter"),
        "wall s": round(wall) if wall else None,
        "loss_curve": loss,
        "miou_curve": miou,
        "per_class": {k[4:]: v for k, v in metrics.items() if k.startswith("IoU.")},
        **{key: job[key] for key in SEARCH_COLUMNS if key in job},
    }


def job_row(job: dict) -> dict[str, Any]:
    """A row for a job whose directory is not here: an Optuna trial another worker ran on
    another machine, or one that has not started. What the study knows of it."""
    overrides = mask_overrides(job.get("overrides") or [])
    return {
        "run_dir": Path(job.get("run_dir") or f"trial-{job.get('trial')}"),
        "overrides": as_mapping(overrides),
        "config": {},
        "choices": {},
        "status": job.get("status"),
        "error": job.get("error") if job.get("status") == "failed" else None,
        "traceback": None,
        "mIoU": job.get("mIoU"),
        **dict.fromkeys(["best mIoU", "mAcc", "aAcc", "iter", "wall s"]),
        "loss_curve": [],
        "miou_curve": [],
        "per_class": {},
        **{key: job[key] for key in SEARCH_COLUMNS if key in job},
    }


def _unprefixed(record: dict) -> dict:
    """mmengine's `log_with_hierarchy` names (train/loss, val/mIoU) as plain ones."""
    return {k.split("/", 1)[-1]: v for k, v in record.items()}


def _error(run_dir: Path, job: dict) -> tuple[str | None, str | None]:
    """(the last line of a run's error, the file with its full traceback): from its sweep's
    summary, else from the traceback a failed job left in its directory."""
    trace = run_dir / TRACEBACK_FILE
    path = job.get("traceback") or (str(trace) if trace.is_file() else None)
    if job.get("error"):
        return job["error"], path
    if path is None:
        return None, None
    lines = [line for line in trace.read_text().splitlines() if line.strip()]
    return (lines[-1].strip() if lines else "failed"), path


def summary_jobs(root: Path) -> dict[str, dict]:
    """run directory -> its job in the sweep's summary, from every sweep at or below `root`."""
    return {
        str(Path(job["run_dir"]).resolve()): job for job in sweep_jobs(root) if job.get("run_dir")
    }


def sweep_jobs(root: Path) -> list[dict]:
    """The jobs of every sweep at or below `root`: an Optuna search's from its study (every
    worker's trials as they stand now), another sweep's from its summary.json."""
    found = []
    folders = {p.parent for pattern in SWEEP_FILES for p in root.glob(f"**/{pattern}")}
    for folder in sorted(folders):
        jobs = study_of_sweep(folder)
        if jobs is None and (folder / SUMMARY_FILE).is_file():
            jobs = json.loads((folder / SUMMARY_FILE).read_text()).get("jobs", [])
        found += jobs or []
    return found


def study_of_sweep(sweep_dir: Path) -> list[dict] | None:
    """The jobs of the Optuna study a sweep directory's search used, or None (not an Optuna
    search, or its study cannot be read from here: then its summary.json tells)."""
    import sqlalchemy
    from omegaconf import OmegaConf

    multirun = sweep_dir / MULTIRUN_FILE
    if not multirun.is_file():
        return None
    sweeper = ((yaml.safe_load(multirun.read_text()) or {}).get("hydra") or {}).get("sweeper")
    if not str((sweeper or {}).get("_target_", "")).endswith("SeglabOptunaSweeper"):
        return None
    from optuna import load_study

    from seglab.run.hparam_search import quiet_optuna, study_jobs
    from seglab.run.study_storage import storage_url, study_name

    storage = sweeper.get("storage")
    try:
        if storage:  # as written: `${oc.env:VAR}` is read here
            storage = OmegaConf.create({"url": storage}).url
        with quiet_optuna():
            study = load_study(
                study_name=study_name({**sweeper, "storage": storage}, sweep_dir),
                storage=storage_url(storage, sweep_dir),
            )
            return study_jobs(study)
    except (KeyError, sqlalchemy.exc.SQLAlchemyError, OmegaConfBaseException):
        return None


def setting(run: dict, key: str) -> str:
    """The value `key` had in `run`: its override as printed, else its group choice or its
    value in the run's composed config ("" where it has none; secrets are not read)."""
    if key in run["overrides"]:
        return _plain(run["overrides"][key])
    if key in run["choices"]:
        return str(run["choices"][key])
    if looks_secret(key):
        return ""
    node: Any = run["config"]
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return ""
        node = node[part]
    return _plain(node)


def _plain(value: Any) -> str:
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
    header = [*search, *keys, *COLUMNS]
    return header, [
        [r.get(c) for c in search] + [setting(r, k) for k in keys] + [r[c] for c in COLUMNS]
        for r in ordered(runs)
    ]


def seed_groups(runs: list[dict]) -> tuple[list[str], list[list[Any]]] | None:
    """mean ± std of the final mIoU over seeds, when a seed is swept."""
    keys = [k for k in varying_keys(runs) if k != SEED_KEY]
    if SEED_KEY not in varying_keys(runs):
        return None
    groups: dict[tuple, list[float]] = {}
    for r in runs:
        if r["mIoU"] is not None:
            groups.setdefault(tuple(setting(r, k) for k in keys), []).append(r["mIoU"])
    table = []
    for group, values in sorted(groups.items(), key=lambda kv: -statistics.mean(kv[1])):
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        table.append([*group, f"{statistics.mean(values):.2f} ± {std:.2f}", len(values)])
    return [*keys, "mIoU mean ± std", "seeds"], table


def markdown(header: list[str], table: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table]
    return "\n".join(lines) + "\n"


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
    parts = [re.split(r"[/,]", r["run_dir"].as_posix()) for r in runs]
    shared = set.intersection(*map(set, parts))
    return [", ".join(p for p in own if p not in shared) for own in parts]


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = figure(runs)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def figure(runs: list[dict]) -> Any:
    """Loss and validation mIoU against the iteration and the best run's per-class IoU; each
    run has one colour in every panel and a numbered legend entry (its row in the table). The
    layout is matplotlib's constrained one: the legend below the panels and every title are
    inside the figure, long names wrapped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    runs = ordered(runs)  # numbered as the table lists them
    names = [f"{i}: {label}" for i, label in enumerate(labels(runs), 1)]
    entries = [_wrap(name, LEGEND_WIDTH) for name in names]
    colours = _colours(len(runs))
    # the legend's three columns, of wrapped entries: room for its lines below the panels
    legend_lines = -(-sum(e.count("\n") + 1 for e in entries) // 3) + 1
    fig = plt.figure(figsize=(17, 5.5 + 0.17 * legend_lines), layout="constrained")
    ax_loss, ax_miou, ax_class = fig.subplots(1, 3)
    for r, entry, colour in zip(runs, entries, colours, strict=True):
        if r["loss_curve"]:
            ax_loss.plot(*zip(*r["loss_curve"], strict=True), color=colour)
        if r["miou_curve"]:
            ax_miou.plot(*zip(*r["miou_curve"], strict=True), marker="o", color=colour)
        # a legend entry for every run, curves or not (a failed run is in the table too)
        ax_miou.plot([], [], color=colour, marker="o", label=entry)
    ax_loss.set(title="training loss", xlabel="iteration", ylabel="loss")
    ax_miou.set(title="validation mIoU", xlabel="iteration", ylabel="mIoU (%)")
    missing = {
        ax_loss: "no loss logged: a run logs it every\ndefault_hooks.logger.interval iterations",
        ax_miou: "no validation logged: a run validates every\ntrain_cfg.val_interval iterations",
    }
    for ax, note in missing.items():
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # iterations: no 19.75
        if not any(len(line.get_xdata()) for line in ax.lines):
            _note(ax, note)
    validated = [v for r in runs for _, v in r["miou_curve"]]
    if validated:  # matplotlib widens equal values (one validation) by 5% of them: 80 ± 4
        low, high = min(validated), max(validated)
        margin = max(MIOU_MARGIN, 0.05 * (high - low))
        ax_miou.set_ylim(low - margin, high + margin)
    best = max((r for r in runs if r["mIoU"] is not None), key=lambda r: r["mIoU"], default=None)
    if best is not None and best["per_class"]:
        number = runs.index(best)
        classes = list(best["per_class"])
        values = [best["per_class"][n] or 0 for n in classes]
        ax_class.bar(classes, values, color=colours[number])
        ax_class.set(
            title=_wrap(f"per-class IoU of the best run, {names[number]}", TITLE_WIDTH)
            + f"\n({best['mIoU']} mIoU)",
            ylabel="IoU (%)",
        )
        ax_class.tick_params(axis="x", rotation=45)
    else:
        _note(ax_class, "no finished run with per-class IoU")
    fig.legend(*ax_miou.get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=8)
    return fig


def _wrap(text: str, width: int) -> str:
    """`text` in lines of at most `width` characters, 3 at most (a name is cut, not the
    figure)."""
    lines = textwrap.wrap(text, width, break_on_hyphens=False, max_lines=3, placeholder=" ...")
    return "\n".join(lines)


def _colours(n: int) -> list[Any]:
    """n distinct colours: matplotlib's tab10/tab20 while they last, then a continuous map."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["turbo"](i / (n - 1)) for i in range(n)]


def _note(ax: Any, text: str) -> None:
    """A panel with nothing to draw says so instead of staying empty."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def failures(runs: list[dict]) -> str:
    """One line per failed run: its number in the table, its directory, the last line of its
    error and where its full traceback is."""
    lines = [
        f"- {i}: {r['run_dir']}: {r['error']}"
        + (f" (traceback: {r['traceback']})" if r["traceback"] else "")
        for i, r in enumerate(ordered(runs), 1)
        if r["status"] == "failed"
    ]
    return "failed runs:\n" + "\n".join(lines) + "\n" if lines else ""


def read_runs(root: Path) -> list[dict]:
    """Every run at or below `root`, as `read_run` reads it, and a row for each job of its
    sweeps whose directory is not here (an Optuna trial of a worker on another machine)."""
    jobs = sweep_jobs(root)
    by_dir = {str(Path(j["run_dir"]).resolve()): j for j in jobs if j.get("run_dir")}
    runs = [read_run(d, by_dir) for d in find_runs(root)]
    here = {str(r["run_dir"].resolve()) for r in runs}
    elsewhere = [j for j in jobs if str(Path(j.get("run_dir") or "?").resolve()) not in here]
    return runs + [job_row(j) for j in elsewhere]


def report(root: str | Path) -> str:
    """Write report.csv, report.md and report.png in `root`; return the printed table."""
    root = Path(root)
    runs = read_runs(root)
    if not runs:
        raise FileNotFoundError(f"{root}: no seglab runs (no {OVERRIDES_FILE}) below it")
    header, table = rows(runs)
    with open(root / REPORT_CSV, "w", newline="") as f:
        csv.writer(f).writerows([header, *table])
    text = markdown(header, table)
    seeds = seed_groups(runs)
    if seeds is not None:
        text += "\n" + markdown(*seeds)
    if failed := failures(runs):
        text += "\n" + failed
    (root / REPORT_MD).write_text(text)
    plot(runs, root / REPORT_PNG)
    return f"{text}\nwritten: {root / REPORT_CSV}, {root / REPORT_MD}, {root / REPORT_PNG}\n"
