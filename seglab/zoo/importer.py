"""`seglab import FILE.py [out=PATH]`: a user's own mmseg config as a seglab experiment.

The file is executed by mmengine (its `_base_` chain, `_delete_=True`, module-level variables),
as `tools/train.py` would; its upstream bases pick seglab's group options and parent experiment,
the generator's solver writes what differs, and the experiment is exported again and compared
with the file by the parity rule before seglab says it is done. A file that writes its data set
inline (no `_base_/datasets` option) gets the `dataset` node such an option holds, read from its
own loaders, so that `dataset.data_root=PATH`, `dataset.crop_size=...` reach every use of
them, as in a zoo experiment.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.global_hydra import GlobalHydra
from mmengine.config import Config

from seglab.config.compose import CONF_DIR
from seglab.config.parity import RUNNER_KEYS, UPSTREAM_CONFIGS, differences, runner_view
from seglab.errors import ConfigError
from seglab.zoo import config_diff
from seglab.zoo.links import link_shared

EXPERIMENTS = CONF_DIR / "experiment"
SCOPE = "mmseg::"


def load(path: Path) -> Config:
    """The user's file as mmengine loads it; any failure is one line naming file and reason."""
    if not path.is_file():
        raise ConfigError(f"import {path}: no such file")
    try:
        return Config.fromfile(str(path), import_custom_modules=False)
    except Exception as err:  # mmengine raises many kinds; the user needs the first line
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        kind = type(err).__name__
        raise ConfigError(f"import {path}: cannot load it ({kind}: {reason})") from None


def file_bases(path: Path) -> list[Path]:
    """The files `path` names in `_base_`: relative to it, or `mmseg::` inside mmseg's configs."""
    tree = ast.parse(path.read_text(), str(path))
    for node in tree.body:
        targets = getattr(node, "targets", [])
        if isinstance(node, ast.Assign) and getattr(targets[0], "id", None) == "_base_":
            value = ast.literal_eval(node.value)
            names = [value] if isinstance(value, str) else list(value)
            return [
                UPSTREAM_CONFIGS / n[len(SCOPE) :] if n.startswith(SCOPE) else path.parent / n
                for n in names
            ]
    return []


def upstream_bases(path: Path) -> list[str]:
    """The upstream files (relative to mmseg's configs/) the chain of `path` starts from; the
    user's own bases are looked through to theirs (their values are in the evaluated config)."""
    found: list[str] = []
    upstream = UPSTREAM_CONFIGS.resolve()
    for base in file_bases(path):
        resolved = base.resolve()
        if resolved.is_relative_to(upstream):
            found.append(str(resolved.relative_to(upstream)))
        else:
            found += upstream_bases(resolved)
    return found


def import_config(path: Path, out: Path) -> list[str]:
    """Write the experiment for `path` at `out` (under experiments/); return its notes."""
    from seglab.zoo.generate import experiment_text, plan, write_delete

    full = load(path).to_dict()
    target = without_scope(
        {k: full[k] for k in RUNNER_KEYS if k in full}, full.get("default_scope")
    )
    bases = upstream_bases(path)
    name = experiment_name(out)
    GlobalHydra.instance().clear()
    try:
        with hydra.initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            parents = [b for b in bases if not b.startswith("_base_/")]
            choices = {}
            if parents:
                parent = parents[0].removesuffix(".py")
                composed = hydra.compose(
                    "config", [f"experiment={parent}"], return_hydra_config=True
                )
                choices[parent] = dict(composed.hydra.runtime.choices)
            parent, picks = plan(bases, target, choices)
            header = [
                f"# Imported from {path} by `seglab import`; the file's own values below.",
                f"#   python -m seglab experiment={name}",
            ]
            text, deletes, notes, _ = experiment_text(
                CONF_DIR, parent, picks, target, header, seed=dataset_node
            )
    except ConfigError as err:
        raise ConfigError(f"import {path}: {err}") from None
    finally:
        GlobalHydra.instance().clear()
    for dotted in deletes:
        write_delete(CONF_DIR, dotted)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return notes


def dataset_node(target: dict) -> dict:
    """The `dataset` node a data set option would give `target` (seglab's shared values:
    type, data_root, num_classes, crop_size, scale, ratio_range, reduce_zero_label and both
    pipelines), read from its own train and validation loaders; the places that equal one
    are then written as links to it, and a value no place uses links nothing."""
    from seglab.zoo.generate import seed_dataset  # the heads' class count, the crop

    train, val = (_innermost(target.get(k)) for k in ("train_dataloader", "val_dataloader"))
    shared: dict[str, Any] = {k: train[k] for k in ("type", "data_root") if k in train}
    shared.update(seed_dataset(target))
    steps = train.get("pipeline") if isinstance(train.get("pipeline"), list) else []
    for step in (s for s in steps if isinstance(s, dict)):
        if step.get("type") == "RandomCrop" and isinstance(step.get("crop_size"), tuple):
            shared["crop_size"] = list(step["crop_size"])  # the model's padding follows it
        if step.get("type") == "RandomResize":
            for key in ("scale", "ratio_range"):
                if isinstance(step.get(key), tuple):
                    shared.setdefault(key, list(step[key]))
        if step.get("type") == "LoadAnnotations" and "reduce_zero_label" in step:
            shared.setdefault("reduce_zero_label", step["reduce_zero_label"])
    node = config_diff.encode(shared)
    links = {f"dataset.{k}": v for k, v in shared.items()}
    for name, loader in (("train_pipeline", train), ("test_pipeline", val)):
        if isinstance(loader.get("pipeline"), list):
            node[name] = link_shared(loader["pipeline"], ("dataset", name), links)
    return node


def _innermost(loader: Any) -> dict:
    """A loader's data set inside its wrappers (RepeatDataset, ...): {} where there is none."""
    dataset = loader.get("dataset") if isinstance(loader, dict) else None
    while isinstance(dataset, dict) and isinstance(dataset.get("dataset"), dict):
        dataset = dataset["dataset"]
    return dataset if isinstance(dataset, dict) else {}


def without_scope(node: Any, scope: str | None) -> Any:
    """`node` without the `_scope_` keys that name `scope`, the config's default scope.

    mmengine adds `_scope_='mmseg'` to every dict with a `type` that an `mmseg::` base gives;
    the Runner builds under the default scope anyway, so these change nothing it builds, and no
    zoo experiment holds them. Another scope (an `mmdet::` base) is kept: that one matters."""
    if scope is None:
        return node
    if isinstance(node, dict):
        return {
            k: without_scope(v, scope)
            for k, v in node.items()
            if not (k == "_scope_" and v == scope)
        }
    if isinstance(node, (list, tuple)):
        return type(node)(without_scope(v, scope) for v in node)
    return node


def experiment_name(out: Path) -> str:
    try:
        relative = out.resolve().relative_to(EXPERIMENTS.resolve())
    except ValueError:
        raise ConfigError(
            f"out={out}: expected a path under {EXPERIMENTS.resolve()} (experiments/), so "
            "that experiment=NAME finds it"
        ) from None
    if relative.suffix != ".yaml":
        raise ConfigError(f"out={out}: expected a .yaml file")
    return str(relative.with_suffix(""))


def parity_with(path: Path, name: str) -> list[str]:
    """Exporting experiment=NAME against the file itself, by the parity rule."""
    from seglab.config.convert import config_text, export_config

    exported = export_config([f"experiment={name}"])
    ours = Config.fromstring(config_text(exported), ".py")
    theirs = load(path)
    scope = theirs.get("default_scope")  # its `_scope_` marks are not imported (without_scope)
    return differences(
        without_scope(runner_view(ours), scope), without_scope(runner_view(theirs), scope)
    )


def import_command(args: Sequence[str]) -> None:
    if any(a in ("-h", "--help") for a in args) or not args:
        print("usage: seglab import FILE.py [out=experiments/NAME.yaml]")
        if not args:
            raise ConfigError("import: expected a config file")
        return
    files = [a for a in args if not a.startswith("out=")]
    outs = [a.split("=", 1)[1] for a in args if a.startswith("out=")]
    if len(files) != 1:
        raise ConfigError(f"import {' '.join(files)}: expected one config file")
    path = Path(files[0])
    out = Path(outs[-1]) if outs else EXPERIMENTS / f"{path.stem}.yaml"
    name = experiment_name(out)
    if out.exists():
        raise ConfigError(f"out={out}: exists; remove it or choose another out=PATH")
    notes = import_config(path, out)
    for note in notes:
        print(f"note: {note}")
    diffs = parity_with(path, name)
    if diffs:
        raise ConfigError(
            f"wrote {out}, but exporting it differs from {path} at {diffs[0]} "
            f"({len(diffs)} differences)"
        )
    print(
        f"wrote {out}: `python -m seglab experiment={name}` exports a config equal to {path} "
        "on every key the Runner reads"
    )
