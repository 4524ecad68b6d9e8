"""`seglab report DIR`: compare the runs under a sweep or run directory without wandb.

Reads each run's own files (works on a sweep that is still running or partly failed):
`.hydra/overrides.yaml` (what it ran), `metrics.json` (its last validation), mmengine's
`*/vis_data/scalars.json` (loss and validation curves), and the sweep's `summary.json` (failed
and pruned jobs). Prints a table, best first, and writes report.csv, report.md and report.png.
"""

from __future__ import annotations

import csv
import json
import statistics
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from seglab.masking import mask_overrides

SEED_KEY = "randomness.seed"
COLUMNS = ["status", "mIoU", "best mIoU", "mAcc", "aAcc", "iter", "wall s"]


def find_runs(root: Path) -> list[Path]:
    """Every Hydra job directory at or below `root` (each has .hydra/overrides.yaml)."""
    return sorted({p.parent.parent for p in root.glob("**/.hydra/overrides.yaml")})


def read_run(run_dir: Path, summary_status: dict[str, str]) -> dict[str, Any]:
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
    config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text()) or {}
    max_iters = (config.get("train_cfg") or {}).get("max_iters")
    metrics_file = run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    loss, miou, wall = [], [], 0.0
    for scalars in sorted(run_dir.glob("*/vis_data/scalars.json")):
        records = [
            _unprefixed(json.loads(line))
            for line in scalars.read_text().splitlines()
            if line.strip()
        ]
        loss += [(r["step"], r["loss"]) for r in records if "loss" in r]
        miou += [(r["step"], r["mIoU"]) for r in records if "mIoU" in r]
        started = datetime.strptime(scalars.parent.parent.name, "%Y%m%d_%H%M%S").timestamp()
        wall += max(0.0, scalars.stat().st_mtime - started)
    status = summary_status.get(str(run_dir.resolve()))
    if status is None:
        status = "finished" if metrics.get("iter") == max_iters else "incomplete"
    return {
        "run_dir": run_dir,
        "overrides": dict(o.split("=", 1) for o in mask_overrides(overrides)),  # as printed
        "status": status,
        "mIoU": metrics.get("mIoU") if status == "finished" else None,
        "best mIoU": round(max(v for _, v in miou), 2) if miou else None,
        "mAcc": metrics.get("mAcc"),
        "aAcc": metrics.get("aAcc"),
        "iter": metrics.get("iter"),
        "wall s": round(wall) if wall else None,
        "loss_curve": loss,
        "miou_curve": miou,
        "per_class": {k[4:]: v for k, v in metrics.items() if k.startswith("IoU.")},
    }


def _unprefixed(record: dict) -> dict:
    """mmengine's `log_with_hierarchy` names (train/loss, val/mIoU) as plain ones."""
    return {k.split("/", 1)[-1]: v for k, v in record.items()}


def summary_statuses(root: Path) -> dict[str, str]:
    """run directory -> status, from every sweep summary at or below `root`."""
    statuses = {}
    for summary in root.glob("**/summary.json"):
        for job in json.loads(summary.read_text()).get("jobs", []):
            if job.get("run_dir"):
                statuses[str(Path(job["run_dir"]).resolve())] = job["status"]
    return statuses


def varying_keys(runs: list[dict]) -> list[str]:
    keys = sorted({k for r in runs for k in r["overrides"]})
    return [k for k in keys if len({r["overrides"].get(k) for r in runs}) > 1]


def rows(runs: list[dict]) -> tuple[list[str], list[list[Any]]]:
    """The table: the swept overrides, then the results; best final mIoU first."""
    keys = varying_keys(runs)
    ordered = sorted(runs, key=lambda r: (r["mIoU"] is None, -(r["mIoU"] or 0)))
    header = [*keys, *COLUMNS]
    return header, [
        [r["overrides"].get(k, "") for k in keys] + [r[c] for c in COLUMNS] for r in ordered
    ]


def seed_groups(runs: list[dict]) -> tuple[list[str], list[list[Any]]] | None:
    """mean ± std of the final mIoU over seeds, when a seed is swept."""
    keys = [k for k in varying_keys(runs) if k != SEED_KEY]
    if SEED_KEY not in varying_keys(runs):
        return None
    groups: dict[tuple, list[float]] = {}
    for r in runs:
        if r["mIoU"] is not None:
            groups.setdefault(tuple(r["overrides"].get(k, "") for k in keys), []).append(r["mIoU"])
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


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = varying_keys(runs)
    fig, (ax_loss, ax_miou, ax_class) = plt.subplots(1, 3, figsize=(17, 5.5))
    for r in runs:
        label = ", ".join(f"{k.split('.')[-1]}={_short(r['overrides'].get(k, ''))}" for k in keys)
        if r["loss_curve"]:
            ax_loss.plot(*zip(*r["loss_curve"], strict=True), label=label)
        if r["miou_curve"]:
            ax_miou.plot(*zip(*r["miou_curve"], strict=True), marker="o", label=label)
    ax_loss.set(title="training loss", xlabel="iteration", ylabel="loss")
    ax_miou.set(title="validation mIoU", xlabel="iteration", ylabel="mIoU (%)")
    for ax in (ax_loss, ax_miou):
        ax.grid(alpha=0.3)
    if len(runs) <= 12:
        fig.legend(*ax_miou.get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=8)
    best = max((r for r in runs if r["mIoU"] is not None), key=lambda r: r["mIoU"], default=None)
    if best is not None and best["per_class"]:
        names = list(best["per_class"])
        ax_class.bar(names, [best["per_class"][n] or 0 for n in names], color="tab:green")
        ax_class.set(title=f"per-class IoU of the best run ({best['mIoU']} mIoU)", ylabel="IoU (%)")
        ax_class.tick_params(axis="x", rotation=45)
    else:
        ax_class.set_axis_off()
    fig.tight_layout(rect=(0, 0.1 if len(runs) <= 12 else 0, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _short(value: str) -> str:
    """A swept number as 4 significant digits, for a legend."""
    try:
        return f"{float(value):.4g}"
    except ValueError:
        return value


def report(root: str | Path) -> str:
    """Write report.csv, report.md and report.png in `root`; return the printed table."""
    root = Path(root)
    statuses = summary_statuses(root)
    runs = [read_run(d, statuses) for d in find_runs(root)]
    if not runs:
        raise FileNotFoundError(f"{root}: no seglab runs (no .hydra/overrides.yaml) below it")
    header, table = rows(runs)
    with open(root / "report.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *table])
    text = markdown(header, table)
    seeds = seed_groups(runs)
    if seeds is not None:
        text += "\n" + markdown(*seeds)
    (root / "report.md").write_text(text)
    plot(runs, root / "report.png")
    return f"{text}\nwritten: {root / 'report.csv'}, {root / 'report.md'}, {root / 'report.png'}\n"
