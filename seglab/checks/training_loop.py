"""The training loop against the parts that count in its units, refused before training.

mmengine's two training loops count differently: an EpochBasedTrainLoop (`schedule=epochs`)
trains `max_epochs` passes over the data, each ended by its sampler; an IterBasedTrainLoop (every
other schedule) trains `max_iters` iterations from a sampler that never ends, in one "epoch" that
ends with the run (its `after_train_epoch` hooks run once, at the end). mmengine 0.10 builds a
mixture of the two without a word, and these go wrong:

- an EpochBasedTrainLoop over an InfiniteSampler (the data set options' sampler): the first
  epoch never ends, so the run never validates, never saves a checkpoint and never stops;
- a key the loop does not take (`max_iters` given to an EpochBasedTrainLoop, `max_epochs` to an
  IterBasedTrainLoop): a TypeError once the model is built;
- in an IterBasedTrainLoop, a parameter scheduler stepped by epoch (`by_epoch`, mmengine's
  default, without `convert_to_iter_based`): it steps once, after the last iteration, so the
  rate stays its starting value for the whole run;
- in an IterBasedTrainLoop, a CheckpointHook counting epochs (`by_epoch`, its default): it
  saves one checkpoint, `epoch_1.pth`, when training ends, and none a stopped run could resume
  from.

What mmengine runs as meant is left alone: iteration-stepped schedulers and checkpoints in an
EpochBasedTrainLoop (their `end` and `interval` in iterations), an epoch-based scheduler with
`convert_to_iter_based` in either loop (an epoch is then one pass of the training loader), a
DefaultSampler under an IterBasedTrainLoop (it restarts the loader), and either
`log_processor.by_epoch` or `log_metric_by_epoch` (only how the logs count).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from seglab.errors import ConfigError

EPOCHS, ITERATIONS = "epochs", "iterations"
# the key of each loop's length, and a schedule option that counts in its units
LENGTH = {EPOCHS: "max_epochs", ITERATIONS: "max_iters"}
SCHEDULE = {EPOCHS: "schedule=epochs", ITERATIONS: "schedule=short"}


def check_training_loop(cfg: Any) -> None:
    train_cfg = cfg.get("train_cfg")
    if not isinstance(train_cfg, dict):
        return
    loop, unit = loop_unit(cfg)
    if loop is None:
        return
    check_loop_keys(train_cfg, loop, unit)
    if unit == EPOCHS:
        check_epoch_sampler(cfg, loop)
    elif unit == ITERATIONS:
        check_epoch_schedulers(cfg, loop)
        check_epoch_checkpoints(cfg, loop)


def loop_unit(cfg: Any) -> tuple[type | None, str | None]:
    """(the training loop's class, EPOCHS or ITERATIONS), as the Runner builds it from
    `train_cfg` (a `type`, or mmengine's older `by_epoch=True|False`); (None, None) for a loop
    no registry holds, (class, None) for one that is neither kind."""
    from mmengine.registry import LOOPS
    from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

    train_cfg = cfg.get("train_cfg") or {}
    if "type" in train_cfg:
        with LOOPS.switch_scope_and_registry(cfg.get("default_scope") or "mmseg") as registry:
            loop = registry.get(train_cfg["type"]) if isinstance(train_cfg["type"], str) else None
    elif "by_epoch" in train_cfg:
        loop = EpochBasedTrainLoop if train_cfg["by_epoch"] else IterBasedTrainLoop
    else:
        return None, None
    if not isinstance(loop, type):
        return None, None
    if issubclass(loop, EpochBasedTrainLoop):
        return loop, EPOCHS
    if issubclass(loop, IterBasedTrainLoop):
        return loop, ITERATIONS
    return loop, None


def check_loop_keys(train_cfg: dict, loop: type, unit: str | None) -> None:
    """Every key of `train_cfg` is an argument of the loop (mmengine passes them all)."""
    parameters = inspect.signature(loop.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    for key, value in train_cfg.items():
        if key in ("type", "by_epoch") or key in parameters:
            continue
        other = next((u for u, length in LENGTH.items() if length == key), None)
        if unit is not None and other is not None and other != unit:
            length = LENGTH[unit]
            raise ConfigError(
                f"train_cfg.{key}={value!r}: {loop.__name__} counts {unit}, not {other}, and "
                f"takes no {key} (mmengine would stop with a TypeError as it builds the loop); "
                f"drop it with ~train_cfg.{key} and set the run's length with "
                f"train_cfg.{length}=N, or train by {other} with {SCHEDULE[other]} "
                f"train_cfg.{key}={value}"
            )
        takes = ", ".join(p for p in parameters if p not in ("self", "runner", "dataloader"))
        raise ConfigError(
            f"train_cfg.{key}={value!r}: {loop.__name__} takes no {key} (mmengine would stop "
            f"with a TypeError as it builds the loop); expected one of {takes}; drop it with "
            f"~train_cfg.{key}"
        )


def check_epoch_sampler(cfg: Any, loop: type) -> None:
    loader = cfg.get("train_dataloader") or {}
    for key in ("sampler", "batch_sampler"):
        sampler = loader.get(key)
        kind = sampler.get("type") if isinstance(sampler, dict) else None
        if isinstance(kind, str) and kind.rpartition(".")[2].startswith("Infinite"):
            raise ConfigError(
                f"train_dataloader.{key}.type={kind!r}: {loop.__name__} (train_cfg.type) ends an "
                f"epoch when its sampler has gone through the data set once, and an {kind} "
                "never does, so the run would never validate, save a checkpoint or end; set "
                f"train_dataloader.{key}.type=DefaultSampler"
            )


def schedulers(node: Any, key: str = "param_scheduler") -> Iterator[tuple[str, dict]]:
    """(override key, scheduler) of each parameter scheduler: one, a list, or (with several
    optimizers) a dict of them by optimizer name."""
    if isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            yield from schedulers(item, f"{key}.{i}")
    elif isinstance(node, dict) and "type" in node:
        yield key, node
    elif isinstance(node, dict):
        for name, item in node.items():
            yield from schedulers(item, f"{key}.{name}")


def check_epoch_schedulers(cfg: Any, loop: type) -> None:
    for key, scheduler in schedulers(cfg.get("param_scheduler")):
        if scheduler.get("by_epoch", True) is False or scheduler.get("convert_to_iter_based"):
            continue
        given = "by_epoch" in scheduler
        setting = f"{key}.by_epoch=true" + ("" if given else " (mmengine's default)")
        add = "" if given else "+"
        convert = "" if "convert_to_iter_based" in scheduler else "+"
        raise ConfigError(
            f"{setting}: {loop.__name__} (train_cfg.type) has one epoch, which ends with the "
            f"run, so this {scheduler.get('type')} would step once, after the last iteration, "
            f"and the rate stay at its start throughout; set {add}{key}.by_epoch=false (begin "
            f"and end in iterations), or {convert}{key}.convert_to_iter_based=true (in epochs "
            "of the training loader)"
        )


def check_epoch_checkpoints(cfg: Any, loop: type) -> None:
    hook = (cfg.get("default_hooks") or {}).get("checkpoint")
    if not isinstance(hook, dict) or hook.get("by_epoch", True) is False:
        return
    given = "by_epoch" in hook
    setting = "default_hooks.checkpoint.by_epoch=true" + ("" if given else " (its default)")
    raise ConfigError(
        f"{setting}: {loop.__name__} (train_cfg.type) has one epoch, which ends with the run, "
        "so CheckpointHook would save one checkpoint (epoch_1.pth) when training ends and none "
        f"to resume from before; set {'' if given else '+'}default_hooks.checkpoint.by_epoch="
        "false (its interval in iterations)"
    )
