"""Generate seglab's group options and experiments from the installed mmsegmentation's configs.

    make zoo        (= python -m seglab.zoo.generate)

Every `_base_` model, data set and schedule becomes a group option under upstream's name; every
config becomes `experiment=<family>/<stem>`: its group choices, its parent experiment where
upstream's file inherits another config, and only the values that differ from those (found by
seglab.zoo.config_diff on the evaluated configs, so upstream's Python is executed, never parsed for
meaning). Each file is then exported and compared with upstream by the parity rule.
"""

from __future__ import annotations

import ast
import collections
import copy
import functools
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import mmseg
import yaml
from hydra.core.global_hydra import GlobalHydra
from mmengine.config import Config
from omegaconf import OmegaConf

from seglab import REPO
from seglab.config.parity import RUNNER_KEYS, UPSTREAM_CONFIGS
from seglab.tree import nodes
from seglab.zoo import config_diff
from seglab.zoo.index import INDEX, index_row, metafile_results, write_index
from seglab.zoo.links import link_shared, shared_values

MMSEG = f"mmsegmentation {mmseg.__version__}"
# upstream's schedule_80k.py is seglab's schedule=80k
SCHEDULE_PREFIX = "schedule_"


def generated_line(source: str) -> str:
    return f"# Generated from {MMSEG}'s configs/{source} by `make zoo`; do not edit."


@functools.cache
def _evaluated(rel: str) -> Config:
    return Config.fromfile(str(UPSTREAM_CONFIGS / rel), import_custom_modules=False)


def evaluate(rel: str) -> dict:
    """Upstream's file executed as mmengine executes it (plain dicts, tuples kept)."""
    return copy.deepcopy(_evaluated(rel).to_dict())


def bases_of(rel: str) -> list[str]:
    """`_base_` of an upstream file, as paths relative to configs/."""
    tree = ast.parse((UPSTREAM_CONFIGS / rel).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "_base_":
            value = ast.literal_eval(node.value)
            names = [value] if isinstance(value, str) else list(value)
            here = (UPSTREAM_CONFIGS / rel).parent
            return [
                str((here / n).resolve().relative_to(UPSTREAM_CONFIGS.resolve())) for n in names
            ]
    return []


def option_name(base_rel: str) -> tuple[str, str] | None:
    """(group, option) for an upstream `_base_` file; None for the runtime."""
    kind, stem = Path(base_rel).parent.name, Path(base_rel).stem
    if kind == "models":
        return "model", stem
    if kind == "datasets":
        return "dataset", stem
    if kind == "schedules":
        return "schedule", stem.removeprefix(SCHEDULE_PREFIX)
    return None


# ---------------------------------------------------------------- YAML


class _Dumper(yaml.SafeDumper):
    pass


def _represent_list(dumper: yaml.SafeDumper, data: list) -> Any:
    flat = all(not isinstance(v, (dict, list)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


def _represent_dict(dumper: yaml.SafeDumper, data: dict) -> Any:
    small = len(data) <= 8 and all(
        not isinstance(v, dict)
        and not (isinstance(v, list) and any(isinstance(i, (dict, list)) for i in v))
        for v in data.values()
    )
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=small)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(dict, _represent_dict)


def dump(body: dict) -> str:
    if not body:
        return ""
    return yaml.dump(body, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)


def write_option(path: Path, header: list[str], defaults: list[Any], body: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(option_text(header, defaults, body))


def option_text(header: list[str], defaults: list[Any], body: dict) -> str:
    """A group option: Hydra's package line first (Hydra reads it only there), then `header`."""
    lines = ["# @package _global_", *header]
    text = "\n".join(lines) + "\n"
    if defaults:
        text += "defaults:\n" + "".join(f"  - {_entry(d)}\n" for d in defaults)
    if body:
        text += "\n" + dump(body)
    return text


# ---------------------------------------------------------------- group options


def model_option(rel: str) -> dict:
    base = evaluate(rel)
    counts = collections.Counter(values_of(base["model"], "num_classes"))
    shared = {"norm_cfg": base.get("norm_cfg"), "data_preprocessor": base.get("data_preprocessor")}
    if counts:
        shared["dataset.num_classes"] = counts.most_common(1)[0][0]
    body: dict[str, Any] = {}
    if "norm_cfg" in base:
        body["norm_cfg"] = config_diff.encode(base["norm_cfg"])
    if "data_preprocessor" in base:
        preprocessor = dict(base["data_preprocessor"])
        preprocessor.setdefault("size", None)
        body["data_preprocessor"] = config_diff.encode(preprocessor)
        body["data_preprocessor"]["size"] = "${as_tuple:${dataset.crop_size}}"
    body["model"] = link_shared(base["model"], ("model",), shared)
    return body


def values_of(tree: Any, key: str) -> list[Any]:
    """Every value under `key` in `tree`, outermost first."""
    return [node[key] for _, node in nodes(tree) if isinstance(node, dict) and key in node]


def dataset_option(rel: str) -> dict:
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    base = evaluate(rel)
    shared: dict[str, Any] = {"type": base["dataset_type"], "data_root": base["data_root"]}
    classes = DATASETS.get(base["dataset_type"]).METAINFO.get("classes")
    if classes:
        shared["num_classes"] = len(classes)
    crops = [s["crop_size"] for s in base.get("train_pipeline", []) if s["type"] == "RandomCrop"]
    crop = base.get("crop_size", crops[0] if crops else None)
    shared["crop_size"] = list(crop) if crop else None  # the model's padding size follows it
    for step in base.get("train_pipeline", []):
        if step["type"] == "RandomResize":
            shared.setdefault("scale", list(step["scale"]))
            if "ratio_range" in step:
                shared.setdefault("ratio_range", list(step["ratio_range"]))
        if step["type"] == "LoadAnnotations" and "reduce_zero_label" in step:
            shared.setdefault("reduce_zero_label", step["reduce_zero_label"])
    links = {f"dataset.{k}": v for k, v in shared.items()}
    body: dict[str, Any] = {"dataset": config_diff.encode(shared)}
    for name in ("train_pipeline", "test_pipeline"):
        if name in base:
            body["dataset"][name] = link_shared(base[name], ("dataset", name), links)
            links[f"dataset.{name}"] = base[name]
            body[name] = f"${{dataset.{name}}}"
    for key in (*RUNNER_KEYS, "tta_pipeline"):
        if key in base and key not in body:
            body[key] = link_shared(base[key], (key,), {**links, **_top(base, key)})
    return body


def _top(base: dict, key: str) -> dict:
    """test_dataloader and test_evaluator follow their val_ twins where upstream's are equal."""
    twin = {"test_dataloader": "val_dataloader", "test_evaluator": "val_evaluator"}.get(key)
    return {twin: base[twin]} if twin in base else {}


def schedule_option(rel: str) -> dict:
    base = evaluate(rel)
    links = {"train_cfg.max_iters": base["train_cfg"].get("max_iters")}
    return {
        key: link_shared(base[key], (key,), links)
        for key in ("param_scheduler", "train_cfg", "val_cfg", "test_cfg", "default_hooks")
        if key in base
    }


def write_group_options(conf: Path) -> dict[str, dict[str, str]]:
    """{group: {upstream base path: option}} after writing every option."""
    written: dict[str, dict[str, str]] = collections.defaultdict(dict)
    makers = {"model": model_option, "dataset": dataset_option, "schedule": schedule_option}
    for path in sorted((UPSTREAM_CONFIGS / "_base_").glob("*/*.py")):
        rel = str(path.relative_to(UPSTREAM_CONFIGS))
        named = option_name(rel)
        if named is None:
            continue
        group, option = named
        header = [generated_line(rel)]
        if group == "dataset":
            header.append(
                "# `dataset` holds upstream's shared values; every place that uses one follows it."
            )
        if group == "schedule":
            header.append(
                "# PolyLR ends where training ends: `train_cfg.max_iters=N` moves both. The "
                "optimizer is the optim_wrapper group."
            )
        write_option(conf / group / f"{option}.yaml", header, [], makers[group](rel))
        written[group][rel] = option
    return written


# ---------------------------------------------------------------- experiments


def upstream_configs() -> list[str]:
    """Every config outside _base_, parents before the configs that inherit them."""
    rels = sorted(
        str(p.relative_to(UPSTREAM_CONFIGS))
        for p in UPSTREAM_CONFIGS.glob("*/*.py")
        if p.parent.name != "_base_"
    )
    ordered: list[str] = []

    def visit(rel: str) -> None:
        if rel in ordered:
            return
        for base in bases_of(rel):
            if not base.startswith("_base_/"):
                visit(base)
        ordered.append(rel)

    for rel in rels:
        visit(rel)
    return ordered


def experiment_name(rel: str) -> str:
    return rel.removesuffix(".py")


def compose_plain(overrides: list[str]) -> tuple[dict, dict]:
    """(the composition unresolved without Hydra's node, its group choices), in the Hydra that
    `generate` holds: every file is read once (Hydra caches what it loaded)."""
    cfg = hydra.compose("config", overrides=overrides, return_hydra_config=True)
    choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if not k.startswith("hydra")}
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain.pop("hydra")
    return plain, choices


def optim_choice(target: dict) -> str:
    optimizer = target.get("optim_wrapper", {}).get("optimizer", {})
    return "adamw" if optimizer.get("type") == "AdamW" else "sgd"


# seglab's hand-written schedule option of mmengine's EpochBasedTrainLoop
EPOCH_SCHEDULE = "epochs"


def epoch_based(target: dict) -> bool:
    """Whether the config trains with mmengine's EpochBasedTrainLoop (by its `type`, or by
    mmengine's older `by_epoch=True`)."""
    train_cfg = target.get("train_cfg") or {}
    kind = train_cfg.get("type")
    if isinstance(kind, str):
        return kind.rpartition(".")[2] == "EpochBasedTrainLoop"
    return kind is None and bool(train_cfg.get("by_epoch"))


def plan(bases: list[str], target: dict, choices: dict[str, dict]) -> tuple[str | None, dict]:
    """(parent experiment, {group: option or None}) for a config with these upstream `_base_`
    files (relative to configs/): the parent is the one that is a config, not a base."""
    parents = [b for b in bases if not b.startswith("_base_/")]
    picks: dict[str, str | None] = {}
    for base in bases:
        named = option_name(base)
        if named:
            picks[named[0]] = named[1]
    parent = experiment_name(parents[0]) if parents else None
    if parent is None:
        # no base: the config writes it inline, so seglab's experiment does too
        for group in ("model", "dataset", "schedule"):
            picks.setdefault(group, None)
    if epoch_based(target):
        # upstream's schedules count iterations, and their PolyLR ends at
        # `${train_cfg.max_iters}`, a key an epoch-based loop lacks: seglab's epoch schedule
        # is the one that differs least (no upstream config counts epochs; a user's may)
        picks["schedule"] = EPOCH_SCHEDULE
    inherited = choices[parent].get("optim_wrapper") if parent else "sgd"
    if optim_choice(target) != inherited:
        picks["optim_wrapper"] = optim_choice(target)
    return parent, picks


def experiment_text(
    conf: Path,
    parent: str | None,
    picks: dict,
    target: dict,
    header: list[str],
    seed: Callable[[dict], dict] | None = None,
) -> tuple[str, list[str], list[str], dict]:
    """(the experiment file, the _delete_ nodes it includes, its notes, its group choices).
    `seed(target)`: the `dataset` node the solver starts from where no data set option is
    picked (default `seed_dataset`: the heads' class count and the crop)."""
    overrides = [f"experiment={parent}"] if parent else []
    # `~group`: the group left out, as `override /group: null` does in the file
    overrides += [f"~{g}" if o is None else f"{g}={o}" for g, o in picks.items()]
    base, choices = compose_plain(overrides)
    work = dict(base)
    if "dataset" not in work:
        work["dataset"] = (seed or seed_dataset)(target)
    solution = config_diff.solve(work, target, link=_linker)
    body, deletes = config_diff.patch(base, solution.work)
    for dotted in deletes:
        write_delete(conf, dotted)
    entries = [
        *([f"/experiment/{parent}"] if parent else []),
        *(f"/_delete_/{d}" for d in deletes),
        *({f"override /{g}": o} for g, o in picks.items()),
        "_self_",
    ]
    lines = [*header, *(f"# upstream: {n}" for n in solution.notes)]
    return option_text(lines, entries, body), deletes, solution.notes, choices


def write_experiment(
    conf: Path, rel: str, deletes_seen: set[str], choices: dict[str, dict]
) -> list[str]:
    """Write experiments/<rel>.yaml; return its notes. `choices` holds each written
    experiment's group choices (a child starts from its parent's)."""
    name = experiment_name(rel)
    full = evaluate(rel)
    target = {k: full[k] for k in RUNNER_KEYS if k in full}
    parent, picks = plan(bases_of(rel), target, choices)
    quirks = _quirks(rel, full)
    header = [generated_line(rel), f"#   python -m seglab experiment={name}"]
    header += [f"# upstream: {q}" for q in quirks]
    text, deletes, notes, choices[name] = experiment_text(conf, parent, picks, target, header)
    deletes_seen.update(deletes)
    path = conf / "experiment" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return [*quirks, *notes]


def _entry(entry: Any) -> str:
    if isinstance(entry, dict):
        ((key, value),) = entry.items()
        return f"{key}: {'null' if value is None else value}"
    return str(entry)


def seed_dataset(target: dict) -> dict:
    """The shared values a config without a data set option still needs (its model links)."""
    heads = collections.Counter(values_of(target.get("model", {}), "num_classes"))
    seed: dict[str, Any] = {}
    if heads:
        seed["num_classes"] = heads.most_common(1)[0][0]
    size = target.get("model", {}).get("data_preprocessor", {}).get("size")
    if size:
        seed["crop_size"] = list(size)
    return seed


def _linker(value: Any, path: tuple, work: dict) -> Any:
    return link_shared(value, path, shared_values(work))


def _quirks(rel: str, full: dict) -> list[str]:
    """What an upstream file's name says and its evaluated config does not (upstream's Python
    assigns a name twice, or misspells one): reproduced, because that is what upstream runs."""
    stem = Path(rel).stem
    notes = []
    match = re.search(r"_r(\d+)(?:-|_|$)", stem)
    depth = full.get("model", {}).get("backbone", {}).get("depth")
    if match and isinstance(depth, int) and int(match.group(1)) != depth:
        notes.append(
            f"the name says ResNet-{match.group(1)}, the config builds depth={depth}; "
            "kept as upstream builds it"
        )
    match = re.search(r"(\d+)x(\d+)$", stem)
    crops = [tuple(c) for c in values_of(full.get("train_dataloader", {}), "crop_size")]
    named = (int(match.group(1)), int(match.group(2))) if match else None
    # a name ending in the test scale (dark-zurich-1920x1080) says nothing of the crop
    scales = [tuple(c) for c in values_of(full.get("test_dataloader", {}), "scale")]
    if named and crops and not {named, named[::-1]} & {*crops, *scales}:
        notes.append(
            f"the name says {named[0]}x{named[1]}, the train pipeline crops "
            f"{crops[0][0]}x{crops[0][1]}; kept as upstream trains it"
        )
    schedulers = full.get("param_scheduler") or []
    schedulers = [schedulers] if isinstance(schedulers, dict) else schedulers
    last_end = schedulers[-1].get("end") if schedulers else None
    iters = full.get("train_cfg", {}).get("max_iters")
    if isinstance(last_end, int) and iters and last_end not in (iters, float("inf")):
        notes.append(
            f"the LR schedule ends at {last_end}, training at {iters}; kept as upstream "
            "schedules it (train_cfg.max_iters does not move it here)"
        )
    if "ohem" in stem and not values_of(full.get("model", {}), "sampler"):
        notes.append("the name says OHEM, no head has a sampler; kept as upstream trains it")
    return notes


_DELETE = re.compile(r"^  - /_delete_/(\S+)$", re.M)


def write_delete(conf: Path, dotted: str) -> None:
    """conf/_delete_/<dotted key>.yaml: the node set to null, so the next config replaces it."""
    path = conf / "_delete_" / f"{dotted}.yaml"
    if path.exists():
        return
    node: Any = None
    for key in reversed(dotted.split(".")):
        node = {key: node}
    header = [
        "# Generated by `make zoo`; do not edit.",
        "# Sets the node to null so the next config replaces it (upstream's _delete_=True).",
    ]
    write_option(path, header, [], node)


def generate(root: Path = REPO, only: list[str] | None = None) -> dict[str, list[str]]:
    """Write every group option and experiment under `root`; {upstream config: notes}."""
    conf = root / "conf"
    write_group_options(conf)
    deletes: set[str] = set()
    choices: dict[str, dict] = {}
    notes = {}
    rows = []
    published = metafile_results(UPSTREAM_CONFIGS)
    wanted = set(_with_parents(only)) if only else None
    GlobalHydra.instance().clear()
    with hydra.initialize_config_dir(str(conf), version_base="1.3"):
        for rel in upstream_configs():
            if wanted is not None and rel not in wanted:
                continue
            try:
                notes[rel] = write_experiment(conf, rel, deletes, choices)
            except Exception as err:  # reported with the others at the end
                notes[rel] = [f"FAILED: {type(err).__name__}: {err}"]
                continue
            name = experiment_name(rel)
            dataset = choices[name].get("dataset")
            rows.append(index_row(name, evaluate(rel), dataset, published.get(rel, {})))
    GlobalHydra.instance().clear()
    if wanted is None:
        header = f"# Generated from {MMSEG}'s configs and metafiles by `make zoo`; do not edit."
        write_index(rows, root / "experiments" / INDEX.name, header)
        # a user's imported experiment may include others: those stay
        used = {
            m
            for p in (root / "experiments").rglob("*.yaml")
            for m in _DELETE.findall(p.read_text())
        }
        for stale in (conf / "_delete_").glob("*.yaml"):
            if stale.stem not in deletes | used:
                stale.unlink()
    return notes


def _with_parents(patterns: list[str]) -> list[str]:
    found: list[str] = []

    def add(rel: str) -> None:
        for base in bases_of(rel):
            if not base.startswith("_base_/"):
                add(base)
        if rel not in found:
            found.append(rel)

    for rel in upstream_configs():
        if any(p in rel for p in patterns):
            add(rel)
    return found


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    start = time.perf_counter()
    notes = generate(only=args or None)
    failed = {
        rel: lines[0] for rel, lines in notes.items() if lines and lines[0].startswith("FAILED")
    }
    print(f"{len(notes)} experiments in {time.perf_counter() - start:.0f} s, {len(failed)} failed")
    for rel, line in failed.items():
        print(f"  {rel}: {line}")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
