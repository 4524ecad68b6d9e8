"""Which values of a config are uses of a shared value, decided from evaluated values.

Upstream copies a module-level variable (crop_size, num_classes, norm_cfg, ...) into every place
that uses it; seglab links those places to one value so that setting it once reaches them all.
A place is linked only where its key says what it is and its value equals the shared value, so
a linked config resolves to exactly what upstream wrote.
"""

from __future__ import annotations

from typing import Any

from seglab.config.resolvers import register_resolvers
from seglab.errors import ConfigError
from seglab.zoo.config_diff import encode, resolve_node

# shared value: the node that holds it in seglab's configs
SHARED = (
    "dataset.type",
    "dataset.data_root",
    "dataset.num_classes",
    "dataset.crop_size",
    "dataset.scale",
    "dataset.ratio_range",
    "dataset.reduce_zero_label",
    "dataset.train_pipeline",
    "dataset.test_pipeline",
    "norm_cfg",
    "data_preprocessor",
    "train_cfg.max_iters",
    "train_cfg.max_epochs",
    "val_dataloader",
    "val_evaluator",
)
RESIZES = ("Resize", "RandomResize")


def shared_values(work: dict) -> dict[str, Any]:
    """The resolved shared values of an unresolved config (those it has)."""
    register_resolvers()  # resolve_node resolves through OmegaConf
    found = {}
    for key in SHARED:
        node: Any = work
        try:
            for part in key.split("."):
                node = node[part]
            value = resolve_node(work, node)
        except (KeyError, TypeError, ConfigError):  # absent or unresolvable: links nothing
            continue
        if value is not None:
            found[key] = value
    return found


def _equal(value: Any, shared: Any) -> bool:
    """Equal, tuples and lists alike (the link writes the right one)."""
    if isinstance(value, tuple) and isinstance(shared, list):
        return list(value) == shared
    return type(value) is type(shared) and value == shared


def _ref(source: str, value: Any) -> str:
    if isinstance(value, tuple):
        return f"${{as_tuple:${{{source}}}}}"
    return f"${{{source}}}"


def _candidates(key: Any, parent: dict | None, path: tuple) -> list[str]:
    """The shared values the place `path` (key `key` in `parent`) may be a use of."""
    kind = parent.get("type") if isinstance(parent, dict) else None
    if path == ("test_dataloader",):
        return ["val_dataloader"]
    if path == ("test_evaluator",):
        return ["val_evaluator"]
    return {
        "num_classes": ["dataset.num_classes"],
        "crop_size": ["dataset.crop_size"],
        "size": ["dataset.crop_size"] if kind in ("SegDataPreProcessor", "Pad") else [],
        "data_root": ["dataset.data_root"],
        "type": ["dataset.type"]
        if isinstance(parent, dict) and ("data_prefix" in parent or "data_root" in parent)
        else [],
        "scale": ["dataset.scale"] if kind in RESIZES else [],
        "ratio_range": ["dataset.ratio_range"] if kind == "RandomResize" else [],
        "reduce_zero_label": ["dataset.reduce_zero_label"] if kind == "LoadAnnotations" else [],
        # a scheduler (it has `begin`) that ends where training ends, counted as it counts
        "end": _loop_lengths(parent),
        "pipeline": ["dataset.train_pipeline", "dataset.test_pipeline"],
        "norm_cfg": ["norm_cfg"],
        "data_preprocessor": ["data_preprocessor"],
    }.get(key, [])


def _loop_lengths(scheduler: Any) -> list[str]:
    """The training lengths a scheduler's `end` may be: in iterations where it steps by
    iteration (`by_epoch=False`), in epochs where it says it steps by epoch (mmengine's default,
    which upstream's schedulers never leave to it)."""
    if not isinstance(scheduler, dict) or "begin" not in scheduler:
        return []
    by_epoch = scheduler.get("by_epoch")
    if by_epoch is None:
        return ["train_cfg.max_iters", "train_cfg.max_epochs"]
    return ["train_cfg.max_epochs"] if by_epoch else ["train_cfg.max_iters"]


def link_shared(value: Any, path: tuple, shared: dict[str, Any]) -> Any:
    """`value` (plain Python, as upstream evaluates it) for the place `path`, in YAML form, with
    every use of a shared value written as a link to it."""

    def walk(node: Any, key: Any, parent: Any, here: tuple) -> Any:
        for source in _candidates(key, parent, here):
            if (
                source in shared
                and tuple(source.split(".")) != here
                and _equal(node, shared[source])
            ):
                return _ref(source, node)
        if isinstance(node, dict):
            return {k: walk(v, k, node, (*here, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, i, node, (*here, i)) for i, v in enumerate(node)]
        return encode(node)

    key = path[-1] if path else None
    return walk(value, key, None, path)
