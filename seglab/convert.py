"""Converting a composed Hydra config into an mmengine Config, and writing it as a .py file.

The YAML keeps mmengine's own key names, so the conversion is a resolve plus checks: the
seglab-only `dataset` node (the shared values) is dropped, and tuples that a command-line override
turned into lists become tuples again, because mmseg asserts them (RandomCrop, Resize, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmengine.config import Config
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seglab import resolvers  # noqa: F401  (registers the resolvers the YAML uses)
from seglab.errors import ConfigError

# Keys of the composed config that are seglab's, not mmengine's.
SEGLAB_KEYS = ("hydra", "dataset")


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """Resolve every interpolation; a missing or broken one is a one-line ConfigError."""
    keys = [k for k in cfg if k != "hydra"]
    try:
        return OmegaConf.to_container(
            OmegaConf.masked_copy(cfg, keys), resolve=True, throw_on_missing=True
        )
    except OmegaConfBaseException as err:
        first_line = str(err).strip().splitlines()[0]
        raise ConfigError(f"{getattr(err, 'full_key', '') or 'config'}: {first_line}") from None


def to_mm_config(cfg: DictConfig, reference: DictConfig | None = None) -> Config:
    """The mmengine Config for `cfg`.

    `reference` is the same composition without value overrides (compose.compose_reference):
    where it holds a tuple and `cfg` a list, the tuple comes back; where the two disagree in
    kind (a number replaced by a string, a pair by a scalar), a ConfigError names the key.
    """
    resolved = to_container(cfg)
    if reference is not None:
        resolved = conform(resolved, to_container(reference))
    for key in SEGLAB_KEYS:
        resolved.pop(key, None)
    return Config(resolved)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _fixed_length(path: str, reference: Any) -> bool:
    """Tuples and the numeric lists of `dataset` (crop size, scale, colours) keep their length."""
    if isinstance(reference, tuple):
        return True
    return path.startswith("dataset.") and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in reference
    )


def conform(value: Any, reference: Any, path: str = "") -> Any:
    """`value` with the tuples of `reference` restored; ConfigError where the kinds differ."""
    if value is None or reference is None:
        return value
    if _kind(value) != _kind(reference):
        raise ConfigError(
            f"{path}={value!r}: expected {_kind(reference)} like {reference!r}, "
            f"got {_kind(value)}"
        )
    if isinstance(value, dict):
        # `dataset` first, so an error names the value the user set, not a place that uses it
        order = sorted(value, key=lambda k: k != "dataset")
        return {k: conform(value[k], reference.get(k), _join(path, k)) for k in order}
    if isinstance(value, (list, tuple)):
        if _fixed_length(path, reference) and len(value) != len(reference):
            raise ConfigError(
                f"{path}={list(value)!r}: expected {len(reference)} values like "
                f"{list(reference)!r}, got {len(value)}"
            )
        items = [
            conform(v, reference[i] if i < len(reference) else None, f"{path}[{i}]")
            for i, v in enumerate(value)
        ]
        return tuple(items) if isinstance(reference, tuple) else items
    return value


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def write_config(cfg: Config, path: str | Path, header: str = "") -> Path:
    """Write `cfg` as an mmengine Python config file that `Config.fromfile` loads.

    No `import` lines: mmengine 0.10.7 on Python >= 3.11 takes a file with `import os` and
    `_base_` for its new config style and refuses the chain.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    path.write_text("\n".join(lines) + ("\n" if lines else "") + cfg.pretty_text)
    return path
