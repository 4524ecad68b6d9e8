"""Converting a composed Hydra config into an mmengine Config, and writing it as a .py file.

The YAML keeps mmengine's own key names, so the conversion is a resolve plus checks: the
seglab-only `dataset` node (the shared values) is dropped, and tuples that a command-line override
turned into lists become tuples again, because mmseg asserts them (RandomCrop, Resize, ...).
A top-level key a command line adds (`+db.dsn=...`) that no mmseg class or Runner reads is
dropped too (`unread_keys`): it may hold a secret, and mmseg has no use for it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mmengine.config import Config
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seglab.config import pretrained, speed
from seglab.config.resolvers import register_resolvers
from seglab.errors import ConfigError

# Keys of the composed config that are seglab's, not mmengine's.
# (the experiment trackers' settings: logger=wandb, mlflow, tensorboard)
SEGLAB_KEYS = ("hydra", "dataset", "wandb", "mlflow", "tensorboard")
# Top-level keys read by mmengine's Runner or mmseg that parity.RUNNER_KEYS leaves out (they
# name the run, or mmseg's inference API reads them): a command line may add them.
READ_ALSO = ("work_dir", "launcher", "randomness", "experiment_name", "strategy", "test_pipeline")


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """Resolve every interpolation; a missing or broken one is a one-line ConfigError."""
    register_resolvers()
    keys = [k for k in cfg if k != "hydra"]
    try:
        return OmegaConf.to_container(
            OmegaConf.masked_copy(cfg, keys), resolve=True, throw_on_missing=True
        )
    except OmegaConfBaseException as err:
        first_line = str(err).strip().splitlines()[0]
        key = getattr(err, "full_key", "") or "config"
        raise loop_length_link_error(cfg, key, first_line) or ConfigError(
            f"{key}: {first_line}"
        ) from None


def reference_container(reference: DictConfig, resolved: Mapping[str, Any]) -> dict[str, Any]:
    """`reference` (the group options without the command line's values) resolved. A value
    that resolves only with the command line's (a zoo scheduler's `end: ${train_cfg.max_iters}`
    under `schedule=epochs`, which `param_scheduler.1.end=N` sets) is the run's own there."""
    register_resolvers()
    plain = OmegaConf.masked_copy(reference, [k for k in reference if k != "hydra"])
    for _ in range(100):  # one broken value a round
        try:
            return OmegaConf.to_container(plain, resolve=True, throw_on_missing=True)
        except OmegaConfBaseException as err:
            key = str(getattr(err, "full_key", "") or "")
            path = [int(p) if p.isdigit() else p for p in re.split(r"[.\[\]]+", key) if p]
            value: Any = resolved
            try:
                for part in path:
                    value = value[part]
            except (KeyError, IndexError, TypeError):
                break
            if not path or OmegaConf.select(plain, key, throw_on_resolution_failure=False) == value:
                break
            OmegaConf.update(plain, key, value, force_add=True)
    return to_container(reference)  # its own error


def loop_length_link_error(cfg: DictConfig, key: str, message: str) -> ConfigError | None:
    """A value that follows `train_cfg.max_iters` where the training loop counts epochs
    (`schedule=epochs` under an experiment whose schedulers end at `${train_cfg.max_iters}`),
    or `train_cfg.max_epochs` where it counts iterations: one line naming the value to set."""
    from seglab.config.compose import LOOP_LENGTHS

    train_cfg = cfg.get("train_cfg")
    for missing, (unit, _) in LOOP_LENGTHS.items():
        if f"'{missing}' not found" not in message or not isinstance(train_cfg, DictConfig):
            continue
        for other, (other_unit, _) in LOOP_LENGTHS.items():
            leaf = other.rpartition(".")[2]
            if other == missing or leaf not in train_cfg:
                continue
            dotted = key.replace("[", ".").replace("]", "")  # as an override writes it
            return ConfigError(
                f"{dotted}=${{{missing}}}: the training loop ({train_cfg.get('type')}) counts "
                f"{other_unit} ({other}={train_cfg._get_node(leaf)._value()}), so there is no "
                f"{missing}; set {dotted} in {unit} itself ({dotted}=N)"
            )
    return None


def export_config(overrides: Sequence[str], *, reference: bool | None = None) -> Config:
    """The mmengine Config `python -m seglab OVERRIDES` trains (and `seglab export` writes),
    composed here from the overrides.

    Value overrides are checked against the same group options composed without them
    (compose.compose_reference: tuples, kinds, lengths); overrides that only pick group options
    make a config that is its own reference, and need no second composition. `reference`:
    True always composes the reference, False never; None decides from the overrides.
    """
    from seglab.config.compose import compose, compose_reference, only_group_choices

    cfg = compose(overrides)
    if reference is None:
        reference = not only_group_choices(overrides)
    return run_config(cfg, compose_reference(cfg.hydra.runtime.choices) if reference else None)


def run_config(cfg: DictConfig, reference: DictConfig | None = None) -> Config:
    """The mmengine Config of a run whose config is already composed (by Hydra, for training).

    `reference` is the same composition without value overrides (compose.compose_reference):
    where it holds a tuple and `cfg` a list, the tuple comes back; where the two disagree in
    kind (a number replaced by a string, a pair by a scalar), a ConfigError names the key.
    None: `cfg` is its own reference (its overrides only pick group options).
    """
    resolved = to_container(cfg)
    # `resume=PATH` names the run to continue (run_dirs picks it as the run directory);
    # mmengine's `resume` is a boolean
    if "resume" in resolved:
        resolved["resume"] = bool(resolved["resume"])
    if reference is not None:
        mismatches: list[Mismatch] = []
        resolved = conform(resolved, reference_container(reference, resolved), (), mismatches)
        if mismatches:
            raise ConfigError(_message(*_where_set(mismatches, cfg)))
    # precision and loader.* in mmseg's own form; channels_last and compile come later
    speed.to_mmseg_form(resolved)
    pretrained.apply_switch(resolved)  # pretrained=false: the model without its weights files
    for key in SEGLAB_KEYS:
        resolved.pop(key, None)
    if reference is not None:
        for key in unread_keys(resolved, reference):
            resolved.pop(key)
    # mmengine runs yapf over the text on every `pretty_text` (the Runner's log and dump, each
    # checkpoint's meta), about 0.1 s a time; the unformatted text is valid and readable.
    return Config(resolved, format_python_code=False)


def unread_keys(resolved: Mapping[str, Any], reference: DictConfig) -> list[str]:
    """The top-level keys a command line added (`+db.dsn=...`, `+custom.password=...`) that
    neither the composed group options have nor mmengine's Runner or mmseg reads.

    They stay out of the export, and so out of the Runner's log and every checkpoint's meta
    (mmengine keeps the config text in both): no mmseg class has a use for them, and such
    keys are where a command line puts a database's or a service's credentials.
    """
    from seglab.config.parity import RUNNER_KEYS

    known = {*reference, *RUNNER_KEYS, *READ_ALSO}
    return [key for key in resolved if key not in known]


# (path, value, reference value, what is wrong)
Mismatch = tuple[tuple, Any, Any, str]


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


def _fixed_length(path: tuple, reference: Any) -> bool:
    """Numeric tuples (sizes, strides) and the numeric lists of `dataset` (crop size, scale, a
    colour) keep their length; names (a data set's classes) and an empty list (custom's palette:
    mmseg's generated colours) take any."""
    numeric = len(reference) > 0 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in reference
    )
    return numeric and (isinstance(reference, tuple) or path[:1] == ("dataset",))


def conform(value: Any, reference: Any, path: tuple, mismatches: list[Mismatch]) -> Any:
    """`value` with the tuples of `reference` restored; where the two differ in kind or in a
    fixed length, a Mismatch is recorded."""
    if value is None or reference is None:
        return value
    if _kind(value) != _kind(reference):
        mismatches.append((path, value, reference, "kind"))
        return value
    if isinstance(value, dict):
        return {k: conform(v, reference.get(k), (*path, k), mismatches) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if _fixed_length(path, reference) and len(value) != len(reference):
            mismatches.append((path, value, reference, "length"))
        items = [
            conform(v, reference[i] if i < len(reference) else None, (*path, i), mismatches)
            for i, v in enumerate(value)
        ]
        return tuple(items) if isinstance(reference, tuple) else items
    return value


ENV_READ = re.compile(r"\$\{oc\.env:([^}]*)\}")


def _written(path: tuple, unresolved: Any) -> Any:
    """What the config holds at `path` before it resolves."""
    node = unresolved
    for key in path:
        if isinstance(node, str):
            break
        node = node[key]
    return node


def _where_set(mismatches: list[Mismatch], cfg: DictConfig) -> tuple[Mismatch, str | None]:
    """The mismatch at the key the user set, not at a place that interpolates it (a key set to
    an environment variable's `${oc.env:...}` is where it was set); and that text, if so."""
    unresolved = OmegaConf.to_container(cfg, resolve=False)
    written = [(m, _written(m[0], unresolved)) for m in mismatches]
    for mismatch, node in written:
        if isinstance(node, str) and ENV_READ.search(node):
            return mismatch, node
    plain = (m for m, node in written if not (isinstance(node, str) and "${" in node))
    return next(plain, mismatches[0]), None


def _message(mismatch: Mismatch, env_read: str | None = None) -> str:
    path, value, reference, problem = mismatch
    key = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")
    if problem == "length":
        return (
            f"{key}={list(value)!r}: expected {len(reference)} values like "
            f"{list(reference)!r}, got {len(value)}"
        )
    line = f"{key}={value!r}: expected {_kind(reference)} like {reference!r}, got {_kind(value)}"
    if env_read and isinstance(value, str) and not isinstance(reference, str):
        # oc.env gives text; oc.decode reads it as YAML reads a value (a number, a list, ...)
        decoded = ENV_READ.sub(lambda m: f"${{oc.decode:${{oc.env:{m[1]}}}}}", env_read)
        line += f" (an environment variable is text: set {key}='{decoded}')"
    return line


def write_config(cfg: Config, path: str | Path, header: str = "") -> Path:
    """Write `cfg` as an mmengine Python config file that `Config.fromfile` loads.

    No `import` lines: mmengine 0.10.7 on Python >= 3.11 takes a file with `import os` and
    `_base_` for its new config style and refuses the chain.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config_text(cfg, header))
    return path


def config_text(cfg: Config, header: str = "") -> str:
    """`cfg` as Python config text under `header`, every line of it a comment.

    A header holds the user's overrides; one with a newline (or a carriage return, which
    `str.splitlines` also splits on) must not start a line of code in the file.
    """
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    return "\n".join(lines) + ("\n" if lines else "") + cfg.pretty_text
