"""`pretrained=false`: one switch that turns off every pretrained weights file of the model,
whatever key the experiment names it under, and a way to turn off one of them that works.

Upstream configs name their weights as `model.pretrained` (a path or `open-mmlab://` name), as
`init_cfg=dict(type='Pretrained', checkpoint=...)` in the backbone, a head or a wrapped module,
or as `Pretrained_Part`, which ViT-like backbones read themselves; some have an init_cfg list
of which one entry loads weights. Setting `init_cfg.checkpoint=null` leaves a Pretrained
initialiser without a file (mmengine then fails on `None`): the whole entry must go.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from seglab.errors import ConfigError
from seglab.tree import key_of, nodes

SWITCH = "pretrained"
WEIGHTS_INIT_TYPES = ("Pretrained", "Pretrained_Part")
ALL_OFF = "pretrained=false"


def weight_sources(cfg: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(key, path or URL) of every weights file the model or run loads: a `pretrained` of the
    model, the checkpoint of an init_cfg of a weights-loading type anywhere in it, `load_from`.
    The checks before training (is it there?) and the zoo's index (does it download?) read it."""
    for key, node in nodes(cfg.get("model"), "model"):
        if isinstance(node, dict) and node.get("type") in WEIGHTS_INIT_TYPES:
            if isinstance(node.get("checkpoint"), str):
                yield f"{key}.checkpoint", node["checkpoint"]
        elif key_of(key) == "pretrained" and isinstance(node, str):
            yield key, node
    if isinstance(cfg.get("load_from"), str) and cfg.get("load_from"):
        yield "load_from", cfg["load_from"]


def apply_switch(resolved: dict[str, Any]) -> list[str]:
    """Take `pretrained` out of the resolved config; when false, turn every weights file of
    `model` off in place. Returns the keys turned off (None in the exported config)."""
    value = resolved.pop(SWITCH, True)
    if not isinstance(value, bool):
        raise ConfigError(
            f"pretrained={value!r}: expected true (the experiment's pretrained weights) or "
            "false (none: the model trains from scratch)"
        )
    if value:
        return []
    return turn_off_weights(resolved.get("model"), "model")


def turn_off_weights(node: Any, key: str) -> list[str]:
    turned_off = []
    if isinstance(node, dict):
        for name, value in list(node.items()):
            where = f"{key}.{name}"
            if name == "pretrained" and isinstance(value, str):
                node[name] = None
                turned_off.append(where)
            elif name == "init_cfg" and loads_weights(value):
                node[name] = _without_weights(value)
                turned_off.append(where)
            else:
                turned_off += turn_off_weights(value, where)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            turned_off += turn_off_weights(value, f"{key}[{i}]")
    return turned_off


def _loads(init: Any) -> bool:
    return isinstance(init, dict) and init.get("type") in WEIGHTS_INIT_TYPES


def loads_weights(init_cfg: Any) -> bool:
    """Whether an init_cfg (a dict or a list of them) loads a weights file."""
    if isinstance(init_cfg, (list, tuple)):
        return any(_loads(init) for init in init_cfg)
    return _loads(init_cfg)


def _without_weights(init_cfg: Any) -> Any:
    """The init_cfg without its weights-loading entries (None where nothing is left)."""
    if isinstance(init_cfg, (list, tuple)):
        rest = [init for init in init_cfg if not _loads(init)]
        return rest or None
    return None


def turn_off_hint(key: str) -> str:
    """The override that turns off the weights named at `key` (as
    weight_sources names them), then the switch that turns all of them off."""
    if key == "load_from" or key.endswith(".pretrained"):
        one = f"{key}=null"
    elif key.endswith(".init_cfg.checkpoint"):
        one = f"{key.removesuffix('.checkpoint')}=null"
    else:  # inside a list (init_cfg[1], ...): Hydra's overrides cannot name one item
        return f"{ALL_OFF} turns off every pretrained weights file"
    return f"{one}; {ALL_OFF} turns off every pretrained weights file"
