"""Finding the upstream mmseg configs that are plain `_base_` compositions of seglab's options."""

from __future__ import annotations

import ast
from pathlib import Path

from seglab.config.compose import group_options
from seglab.config.parity import UPSTREAM_CONFIGS

# Upstream _base_ file stems and the seglab group option each corresponds to.
SCHEDULES = {f"schedule_{n}": n for n in group_options("schedule")}
ALLOWED_TOP_LEVEL = {"_base_", "crop_size", "data_preprocessor", "model"}
ALLOWED_MODEL_KEYS = {"data_preprocessor", "decode_head", "auxiliary_head"}


def _base_overrides(path: Path) -> list[str] | None:
    """The seglab overrides that compose `path`, or None when it is more than a composition."""
    tree = ast.parse(path.read_text())
    assigned: dict[str, ast.expr] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            return None
        target = node.targets[0]
        if not isinstance(target, ast.Name) or target.id not in ALLOWED_TOP_LEVEL:
            return None
        assigned[target.id] = node.value
    if "_base_" not in assigned or not isinstance(assigned["_base_"], ast.List):
        return None
    bases = [Path(ast.literal_eval(e)) for e in assigned["_base_"].elts]
    groups: dict[str, str] = {}
    for base in bases:
        kind, stem = base.parent.name, base.stem
        if kind == "models" and stem in group_options("model"):
            groups["model"] = stem
        elif kind == "datasets" and stem in group_options("dataset"):
            groups["dataset"] = stem
        elif kind == "schedules" and stem in SCHEDULES:
            groups["schedule"] = SCHEDULES[stem]
        elif not (kind == "_base_" and stem == "default_runtime"):
            return None
    if set(groups) != {"model", "dataset", "schedule"}:
        return None
    model = assigned.get("model")
    if model is not None:
        if not (
            isinstance(model, ast.Call) and {k.arg for k in model.keywords} <= ALLOWED_MODEL_KEYS
        ):
            return None
        for keyword in model.keywords:
            if keyword.arg != "data_preprocessor":
                value = keyword.value
                if not (
                    isinstance(value, ast.Call)
                    and [k.arg for k in value.keywords] == ["num_classes"]
                ):
                    return None
    return [f"{group}={option}" for group, option in groups.items()]


def plain_compositions() -> dict[str, list[str]]:
    """{upstream config path relative to configs/: seglab overrides}."""
    found = {}
    for path in sorted(UPSTREAM_CONFIGS.glob("*/*.py")):
        if path.parent.name == "_base_":
            continue
        overrides = _base_overrides(path)
        if overrides is not None:
            found[str(path.relative_to(UPSTREAM_CONFIGS))] = overrides
    return found
