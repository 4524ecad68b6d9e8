"""seglab's speed switches: numeric precision, channels-last memory format, torch.compile and the
data loaders' knobs (workers per GPU, pinned memory, persistent workers).

Where mmseg has a form for a switch, the exported config.py uses it: `precision` becomes mmseg's
AmpOptimWrapper (what its tools/train.py --amp writes), `loader.*` every dataloader's own keys.
`channels_last` and `compile` change how the Runner runs, not what it trains, so they are
runtime additions made after the export (seglab/run/runner_config.py), as seglab's hooks are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from seglab.errors import ConfigError

PRECISIONS = ("fp32", "fp16", "bf16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
LOADER_KEYS = ("num_workers", "pin_memory", "persistent_workers")
DATALOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")
# the composed config's keys that are these switches, not mmengine's
SWITCH_KEYS = ("amp", "precision", "channels_last", "compile", "compile_mode", "loader")


def requested_precision(cfg: Mapping[str, Any]) -> tuple[str, str | None]:
    """The precision `cfg` asks for and the switch that asks for it (`precision=bf16`,
    `amp=true`), or ('fp32', None). `amp=true` is the older name of precision=fp16."""
    precision = cfg.get("precision", "fp32")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r}: expected one of {', '.join(PRECISIONS)}")
    if not cfg.get("amp"):
        return precision, None if precision == "fp32" else f"precision={precision}"
    if precision == "bf16":
        raise ConfigError(
            "amp=true: is precision=fp16, which contradicts precision=bf16; drop amp=true"
        )
    return "fp16", "amp=true" if precision == "fp32" else "precision=fp16"


def precision_switch(cfg: Mapping[str, Any]) -> str | None:
    """The switch that made the optim_wrapper an AmpOptimWrapper, or None where none did: fp16
    asked of a config whose own wrapper is an AmpOptimWrapper changes nothing, and that
    wrapper's need of a GPU is named by its own key (seglab/checks/requirements.py)."""
    precision, switch = requested_precision(cfg)
    wrapper = cfg.get("optim_wrapper") or {}
    if precision == "fp16" and wrapper.get("type") == "AmpOptimWrapper":
        return None
    return switch


def to_mmseg_form(resolved: dict[str, Any]) -> None:
    """Check the switches' values and take them out of `resolved` (a converted config), leaving
    mmseg's form of those that have one: the AmpOptimWrapper and the dataloaders' keys."""
    check_runtime_values(resolved)
    precision, switch = requested_precision(resolved)
    if switch is not None:
        apply_precision(resolved["optim_wrapper"], precision, switch)
    apply_loader(resolved, resolved.get("loader") or {})
    for key in SWITCH_KEYS:
        resolved.pop(key, None)


def apply_precision(wrapper: dict[str, Any], precision: str, switch: str) -> None:
    """fp16 as mmseg's --amp sets it up (a dynamic loss scale); bf16 with mmengine's `dtype`.
    bf16 has float32's exponent range, so its gradients need no scaling: a fixed scale of 1."""
    if wrapper.get("type") not in ("OptimWrapper", "AmpOptimWrapper"):
        raise ConfigError(
            f"{switch}: expected optim_wrapper.type='OptimWrapper' to turn into "
            f"'AmpOptimWrapper', got {wrapper.get('type')!r}"
        )
    if precision == "fp16":
        if wrapper["type"] == "AmpOptimWrapper" and wrapper.get("dtype") in (None, "float16"):
            return  # the config's own fp16 mixed precision, as upstream has it
        wrapper.pop("dtype", None)
        wrapper.update(type="AmpOptimWrapper", loss_scale="dynamic")
    else:
        wrapper.update(type="AmpOptimWrapper", dtype="bfloat16", loss_scale=1.0)


def apply_loader(resolved: dict[str, Any], loader: Mapping[str, Any]) -> None:
    """`loader.KEY=VALUE` reaches every dataloader the config has; a null keeps each loader's
    own value (upstream's: mmseg's dataset bases set their workers and persistent workers)."""
    unknown = sorted(set(loader) - set(LOADER_KEYS))
    if unknown:
        raise ConfigError(
            f"loader.{unknown[0]}: expected one of loader.{', loader.'.join(LOADER_KEYS)}"
        )
    workers = loader.get("num_workers")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 0
    ):
        raise ConfigError(
            f"loader.num_workers={workers!r}: expected an integer from 0 up (workers per GPU)"
        )
    for key in ("pin_memory", "persistent_workers"):
        if loader.get(key) is not None and not isinstance(loader[key], bool):
            raise ConfigError(f"loader.{key}={loader[key]!r}: expected true or false")
    if workers == 0 and loader.get("persistent_workers"):
        raise ConfigError(
            "loader.persistent_workers=true: needs loader.num_workers of 1 or more "
            "(torch's DataLoader keeps no workers alive when it has none)"
        )
    for name in DATALOADERS:
        dataloader = resolved.get(name)
        if not isinstance(dataloader, dict):
            continue
        dataloader.update({k: v for k, v in loader.items() if v is not None})
        # upstream's loaders keep their workers alive, which torch refuses without workers
        if workers == 0 and loader.get("persistent_workers") is None:
            dataloader["persistent_workers"] = False


def check_runtime_values(cfg: Mapping[str, Any]) -> None:
    """channels_last, compile and compile_mode hold what they can mean."""
    for key in ("channels_last", "compile"):
        if not isinstance(cfg.get(key, False), bool):
            raise ConfigError(f"{key}={cfg[key]!r}: expected true or false")
    mode = cfg.get("compile_mode", "default")
    if mode not in COMPILE_MODES:
        raise ConfigError(f"compile_mode={mode!r}: expected one of {', '.join(COMPILE_MODES)}")
