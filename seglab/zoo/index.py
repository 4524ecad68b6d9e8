"""The index of upstream's configs that `seglab list` prints: experiments/zoo-index.tsv.

Written by the zoo generator from the evaluated configs and upstream's metafiles (published mIoU
and weights), so listing the 681 experiments reads one small file and composes nothing. Two
columns the index lacks are read at list time from files that load in a fraction of a second
(composing or building 681 models would take minutes): upstream's training memory per GPU from
the metafiles, and whether the experiment downloads weights when it starts, from its YAML files
merged as Hydra merges them (tests/test_list_columns.py compares that with the export).
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from seglab import CONF_DIR, EXPERIMENTS_DIR
from seglab.config.pretrained import weight_sources
from seglab.errors import ConfigError

INDEX = EXPERIMENTS_DIR / "zoo-index.tsv"
COLUMNS = ("experiment", "dataset", "crop", "iters", "mIoU", "needs", "weights")
SHOWN = ("experiment", "dataset", "crop", "iters", "mIoU", "mem(GB)", "pretrained", "needs")
# a weights source with a scheme (https://, open-mmlab://, torchvision://, mmcls://) is fetched
# when the model is built; anything else names a local file
DOWNLOADED = re.compile(r"^[A-Za-z][\w+.-]*://")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml where built: 5x faster


def metafile_results(configs: Path) -> dict[str, dict[str, Any]]:
    """{config path relative to configs/: {"mIoU": ..., "weights": ...}} from the metafiles."""
    found: dict[str, dict[str, Any]] = {}
    for metafile in sorted(configs.glob("*/metafile.yaml")):
        for model in yaml.load(metafile.read_text(), Loader=_LOADER).get("Models", []):
            results = model.get("Results") or []
            results = [results] if isinstance(results, dict) else results
            miou = next(
                (r["Metrics"]["mIoU"] for r in results if "mIoU" in r.get("Metrics", {})), None
            )
            rel = str(model.get("Config", "")).removeprefix("configs/")
            memory = (model.get("Metadata") or {}).get("Memory (GB)")
            found[rel] = {"mIoU": miou, "weights": model.get("Weights"), "memory": memory}
    return found


def mmseg_configs() -> Path:
    """The installed mmseg's configs/, found without importing mmseg (which imports torch)."""
    spec = importlib.util.find_spec("mmseg")
    if spec is None or spec.origin is None:
        raise ConfigError("list: mmsegmentation is not installed; expected it (make install)")
    return Path(spec.origin).parent / ".mim" / "configs"


@functools.cache
def _yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_LOADER) or {}


def _merge(into: Any, node: Any) -> Any:
    """OmegaConf's merge on plain values: dicts key by key, anything else (null, a list)
    replaces. New dicts only: the cached files stay as read."""
    if isinstance(into, dict) and isinstance(node, dict):
        return {**into, **{k: _merge(into.get(k), v) for k, v in node.items()}}
    return node


def _bodies(name: str, choices: dict) -> list[Any]:
    """What experiment NAME merges after the group options, in Hydra's order: its parent's
    files, its `_delete_` nulls, its own body. Its group overrides go into `choices` before its
    parent's, which lose (Hydra keeps the first override of a group, and meets a file's own
    before those of the files it includes)."""
    data = _yaml(CONF_DIR / "experiment" / f"{name}.yaml")
    entries = data.get("defaults", [])
    for entry in entries:
        if isinstance(entry, dict):
            ((key, value),) = entry.items()
            choices.setdefault(key.removeprefix("override /"), value)
    own = {k: v for k, v in data.items() if k != "defaults"}
    bodies: list[Any] = []
    for entry in [*entries, *(["_self_"] if "_self_" not in entries else [])]:
        if entry == "_self_":
            bodies.append(own)
        elif isinstance(entry, str) and entry.startswith("/experiment/"):
            bodies += _bodies(entry.removeprefix("/experiment/"), choices)
        elif isinstance(entry, str) and entry.startswith("/_delete_/"):
            bodies.append(_yaml(CONF_DIR / "_delete_" / f"{entry.removeprefix('/_delete_/')}.yaml"))
    return bodies


def start_config(name: str) -> dict:
    """`model` and `load_from` of experiment NAME as Hydra composes them (no other group option
    sets them), unresolved: enough to see which weights it loads."""
    choices: dict[str, Any] = {}
    bodies = _bodies(name, choices)
    defaults = _yaml(CONF_DIR / "config.yaml")["defaults"]
    model = choices.get("model", next(d["model"] for d in defaults if "model" in d))
    merged: Any = _yaml(CONF_DIR / "model" / f"{model}.yaml") if model else {}
    for body in bodies:
        merged = _merge(merged, body)
    return {k: merged.get(k) for k in ("model", "load_from")}


def start_weights(name: str) -> str:
    """`download` where experiment NAME fetches weights when it starts, `file` where it reads
    a local weights file only, `none` where it trains from scratch."""
    sources = [source for _, source in weight_sources(start_config(name))]
    if any(DOWNLOADED.match(s) for s in sources):
        return "download"
    return "file" if sources else "none"


def index_row(name: str, cfg: dict, dataset_option: str | None, published: dict) -> dict:
    """One line of the index for the evaluated upstream config `cfg`."""
    from seglab.checks.requirements import requirements

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
    published = metafile_results(mmseg_configs())
    for row in rows:
        memory = published.get(f"{row['experiment']}.py", {}).get("memory")
        row["mem(GB)"] = "" if memory is None else memory
        row["pretrained"] = start_weights(row["experiment"])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in SHOWN}
    print("  ".join(c.ljust(widths[c]) for c in SHOWN).rstrip())
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in SHOWN).rstrip())
        if row["weights"]:
            print(f"    weights: {row['weights']}")
    print("mem(GB): per GPU in upstream's training, at its batch and crop (its metafile)")
    print(
        "pretrained: download = weights fetched when training starts (pretrained=false "
        "trains from scratch), file = a local weights file it names, none = from scratch"
    )
    print(f"{len(rows)} experiments; run one with `python -m seglab experiment=NAME`")
