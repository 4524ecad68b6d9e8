"""The index of upstream's configs that `seglab list` prints: experiments/zoo-index.tsv.

Written by the zoo generator from the evaluated configs and upstream's metafiles (published mIoU
and weights), so listing the 681 experiments reads one small file and composes nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from seglab.errors import ConfigError

INDEX = Path(__file__).resolve().parent.parent / "experiments" / "zoo-index.tsv"
COLUMNS = ("experiment", "dataset", "crop", "iters", "mIoU", "needs", "weights")


def metafile_results(configs: Path) -> dict[str, dict[str, Any]]:
    """{config path relative to configs/: {"mIoU": ..., "weights": ...}} from the metafiles."""
    found: dict[str, dict[str, Any]] = {}
    for metafile in sorted(configs.glob("*/metafile.yaml")):
        for model in yaml.safe_load(metafile.read_text()).get("Models", []):
            results = model.get("Results") or []
            results = [results] if isinstance(results, dict) else results
            miou = next(
                (r["Metrics"]["mIoU"] for r in results if "mIoU" in r.get("Metrics", {})), None
            )
            rel = str(model.get("Config", "")).removeprefix("configs/")
            found[rel] = {"mIoU": miou, "weights": model.get("Weights")}
    return found


def index_row(name: str, cfg: dict, dataset_option: str | None, published: dict) -> dict:
    """One line of the index for the evaluated upstream config `cfg`."""
    from seglab.requirements import requirements

    crop = cfg.get("model", {}).get("data_preprocessor", {}).get("size") or cfg.get("crop_size")
    train = cfg.get("train_cfg", {})
    epochs = f"{train['max_epochs']} epochs" if "max_epochs" in train else ""
    iters = train.get("max_iters") or epochs
    needs = sorted({r.what for r in requirements(cfg)})
    return {
        "experiment": name,
        "dataset": dataset_option or _dataset_type(cfg),
        "crop": "x".join(str(v) for v in crop) if crop else "",
        "iters": iters,
        "mIoU": "" if published.get("mIoU") is None else published["mIoU"],
        "needs": ", ".join(needs),
        "weights": published.get("weights") or "",
    }


def _dataset_type(cfg: dict) -> str:
    dataset = cfg.get("train_dataloader", {}).get("dataset", {})
    while "dataset" in dataset:  # RepeatDataset and other wrappers
        dataset = dataset["dataset"]
    return str(dataset.get("type", ""))


def write_index(rows: list[dict], path: Path, header: str) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda r: r["experiment"]))
    path.write_text(header + "\n" + out.getvalue())


def read_index(path: Path = INDEX) -> list[dict]:
    if not path.is_file():
        raise ConfigError(f"{path}: no zoo index; run `make zoo` to write it")
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t"))


def list_command(args: Sequence[str]) -> None:
    """`seglab list [PATTERN ...]`: the experiments whose name holds every pattern."""
    if any(a in ("-h", "--help") for a in args):
        print("usage: seglab list [PATTERN ...]   upstream's configs as experiment=NAME")
        return
    rows = [r for r in read_index() if all(p.lower() in r["experiment"].lower() for p in args)]
    if not rows:
        raise ConfigError(f"list {' '.join(args)}: no experiment matches; try a shorter pattern")
    shown = ("experiment", "dataset", "crop", "iters", "mIoU", "needs")
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in shown}
    print("  ".join(c.ljust(widths[c]) for c in shown).rstrip())
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in shown).rstrip())
        if row["weights"]:
            print(f"    weights: {row['weights']}")
    print(f"{len(rows)} experiments; run one with `python -m seglab experiment=NAME`")
