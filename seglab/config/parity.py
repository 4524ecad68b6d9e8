"""The parity rule: a seglab export equals an upstream mmseg config when every key the Runner
reads holds the same values of the same types (a tuple is not a list), both loaded by
Config.fromfile. The zoo generator and the tests use it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mmseg
from mmengine.config import Config

UPSTREAM_CONFIGS = Path(mmseg.__file__).parent / ".mim" / "configs"

# What mmengine's Runner (Runner.from_cfg and the cfg.get calls inside it) and mmseg's
# tools/test.py read from a config.
RUNNER_KEYS = (
    "model",
    "train_dataloader",
    "val_dataloader",
    "test_dataloader",
    "train_cfg",
    "val_cfg",
    "test_cfg",
    "auto_scale_lr",
    "optim_wrapper",
    "param_scheduler",
    "val_evaluator",
    "test_evaluator",
    "default_hooks",
    "custom_hooks",
    "data_preprocessor",
    "load_from",
    "resume",
    "env_cfg",
    "log_processor",
    "log_level",
    "visualizer",
    "default_scope",
    "model_wrapper_cfg",
    "sync_bn",
    "find_unused_parameters",
    "activation_checkpointing",
    "efficient_conv_bn_eval",
    "compile",
    "runner_type",
    "tta_model",
    "tta_pipeline",
    # read by Config itself on load: mmdet / mmpretrain heads and backbones need their imports
    "custom_imports",
)
# Left out by definition: they name the run, not what it computes.
IGNORED = {"visualizer": ("name", "vis_backends")}


def differences(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Every place where the two differ in value or in type (a tuple is not a list)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        diffs = []
        for key in sorted(set(ours) | set(theirs), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in ours or key not in theirs:
                side = "ours" if key in ours else "upstream"
                diffs.append(f"{sub}: only in {side}")
            else:
                diffs += differences(ours[key], theirs[key], sub)
        return diffs
    if type(ours) is not type(theirs):
        return [f"{path}: {ours!r} ({type(ours).__name__}) != {theirs!r} ({type(theirs).__name__})"]
    if isinstance(ours, (list, tuple)):
        if len(ours) != len(theirs):
            return [f"{path}: {len(ours)} items != {len(theirs)}"]
        return [
            d
            for i, (a, b) in enumerate(zip(ours, theirs, strict=True))
            for d in differences(a, b, f"{path}[{i}]")
        ]
    return [] if ours == theirs else [f"{path}: {ours!r} != {theirs!r}"]


def runner_view(cfg: Config) -> dict:
    plain = cfg.to_dict()
    view = {k: plain[k] for k in RUNNER_KEYS if k in plain}
    for key, subkeys in IGNORED.items():
        for sub in subkeys:
            view.get(key, {}).pop(sub, None)
    return view


def parity_differences(exported: Path, upstream_rel: str) -> list[str]:
    ours = Config.fromfile(str(exported), import_custom_modules=False)
    theirs = Config.fromfile(str(UPSTREAM_CONFIGS / upstream_rel), import_custom_modules=False)
    return differences(runner_view(ours), runner_view(theirs))
