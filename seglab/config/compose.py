"""Composing the Hydra config tree under conf/ outside of a Hydra run (export, tests, checks)."""

from __future__ import annotations

import dataclasses
import difflib
import enum
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import ConfigCompositionException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from seglab import CONF_DIR
from seglab.config.resolvers import register_resolvers
from seglab.errors import ConfigError
from seglab.overrides import override_keys

CONFIG_NAME = "config"


def groups(conf_dir: Path = CONF_DIR) -> list[str]:
    """The config groups: each folder of conf/ (experiment/ links to experiments/); `_delete_`
    holds what generated experiments include, not options to pick."""
    return sorted(p.name for p in conf_dir.iterdir() if p.is_dir() and not p.name.startswith("_"))


def group_options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """A group's options; those in subfolders by their path (`segformer/segformer_mit-b0_...`)."""
    folder = conf_dir / group
    return sorted(str(p.relative_to(folder).with_suffix("")) for p in folder.rglob("*.yaml"))


def parse_overrides(overrides: Sequence[str]) -> list[Override]:
    """Hydra's parse of `overrides`; a syntax error (`dataset.crop_size=[64,64`) is one line
    with Hydra's own message, instead of the traceback an uncaught OverrideParseException is."""
    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except OverrideParseException as err:
        # Hydra's message: the error, a caret line under a lexer error, a link to the grammar
        lines = [line.strip() for line in err.message.splitlines() if line.strip(" ^")]
        raise ConfigError(f"{err.override}: " + "; ".join(lines)) from None


def check_group_choices(overrides: Sequence[str], conf_dir: Path = CONF_DIR) -> None:
    """An unknown group option is one line naming the closest options, before Hydra composes."""
    known = groups(conf_dir)
    for override in parse_overrides(overrides):
        group = override.key_or_group.lstrip("/")
        if override.package is not None or override.is_delete():
            continue
        if group in known:
            options = group_options(group, conf_dir)
        elif group.startswith("hydra/"):  # Hydra's groups: launcher, sweeper, ...
            options = hydra_group_options(group, conf_dir)
        else:
            continue
        values = (
            list(override.sweep_string_iterator())
            if override.is_sweep_override()
            else [override.value()]
        )
        # a list picks several options of one group: `logger=[wandb,tensorboard]`
        values = [v for value in values for v in (value if isinstance(value, list) else [value])]
        for value in values:
            if value is None and group == "experiment":
                continue
            if value not in options:
                raise ConfigError(
                    f"{group}={value}: no such {group} option; {_closest(value, options)}"
                )


def hydra_group_options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The options of one of Hydra's groups (`hydra/launcher`): its own, its plugins' (their
    ConfigStore entries) and conf/hydra's, as Hydra's config loader lists them."""
    if GlobalHydra.instance().is_initialized():
        return GlobalHydra.instance().config_loader().get_group_options(group)
    with hydra.initialize_config_dir(str(conf_dir), version_base="1.3"):
        return GlobalHydra.instance().config_loader().get_group_options(group)


def _closest(value: str, options: list[str]) -> str:
    """The options nearest `value` (by name, then within its folder), or all of a short list."""
    if len(options) <= 12:
        return "expected one of: " + ", ".join(options)
    near = difflib.get_close_matches(str(value), options, n=5, cutoff=0.6)
    stem = str(value).rsplit("/", 1)[-1]
    by_stem = {o.rsplit("/", 1)[-1]: o for o in options}
    near += [by_stem[s] for s in difflib.get_close_matches(stem, by_stem, n=5, cutoff=0.6)]
    near = list(dict.fromkeys(near))[:5]
    if not near:
        return f"none of its {len(options)} options is close; `seglab list` shows them"
    return "did you mean " + ", ".join(near) + "?"


def only_group_choices(overrides: Sequence[str]) -> bool:
    """Whether `overrides` only pick group options (`model=...`), changing no value."""
    known = groups()
    return override_keys(overrides) <= set(known)


def compose(overrides: Sequence[str] = (), conf_dir: Path = CONF_DIR) -> DictConfig:
    """The config `python -m seglab OVERRIDES` would run, with its `hydra` node.

    A value that a typed node refuses (the sweepers' and launchers' options are dataclasses)
    is a ConfigError naming the key, the value and the type expected; a key the config lacks
    names the closest keys beside it; any other composition error is Hydra's message on one
    line.
    """
    check_group_choices(overrides, conf_dir)
    check_added_keys(overrides, conf_dir)
    register_resolvers()
    try:
        if GlobalHydra.instance().is_initialized():
            return hydra.compose(CONFIG_NAME, overrides=list(overrides), return_hydra_config=True)
        with hydra.initialize_config_dir(str(conf_dir), version_base="1.3"):
            return hydra.compose(CONFIG_NAME, overrides=list(overrides), return_hydra_config=True)
    except ConfigCompositionException as err:
        error = typed_node_error(err.__cause__, overrides) or unknown_key_error(
            err.__cause__, overrides, conf_dir
        )
        if error is None:  # Hydra's own message (a defaults list that names a missing file)
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            cause = str(err.__cause__ or "").strip().splitlines()
            error = ConfigError("; ".join(lines + cause[:1]))  # the cause: what was wrong
        raise error from None


def missing_key_error(override: str, key: str, siblings: Sequence[str]) -> ConfigError:
    """`KEY=VALUE: no key LEAF under PARENT; did you mean NEAR?` (Hydra says only that `+KEY`
    would add it, which would train with a key no mmengine class reads)."""
    parent, _, leaf = key.rpartition(".")
    where = f"under {parent}" if parent else "at the top level"
    near = difflib.get_close_matches(leaf, [str(k) for k in siblings], n=3)
    if near:
        hint = f"did you mean {', '.join(near)}?"
    else:
        hint = f"+{override.lstrip('+')} adds it, if a class reads it"
    return ConfigError(f"{override}: no key {leaf} {where}; {hint}")


# the length of mmengine's two training loops, and a schedule option that counts in its units
LOOP_LENGTHS = {
    "train_cfg.max_iters": ("iterations", "schedule=short"),
    "train_cfg.max_epochs": ("epochs", "schedule=epochs"),
}


def loop_length_error(override: str, key: str, train_cfg: DictConfig) -> ConfigError | None:
    """`train_cfg.max_iters=N` where the schedule's loop counts epochs (`schedule=epochs`), or
    `train_cfg.max_epochs=N` where it counts iterations: the key the loop has, and the schedule
    that counts as the override does. None for any other key."""
    if key not in LOOP_LENGTHS:
        return None
    unit, schedule = LOOP_LENGTHS[key]
    for other, (other_unit, _) in LOOP_LENGTHS.items():
        leaf = other.rpartition(".")[2]
        if other != key and leaf in train_cfg:
            loop = train_cfg.get("type", "the training loop")
            value = override.split("=", 1)[1]
            return ConfigError(
                f"{override}: no key {key.rpartition('.')[2]} under train_cfg: its {loop} counts "
                f"{other_unit} ({other}={train_cfg._get_node(leaf)._value()}); set {other}=N, "
                f"or train by {unit} with {schedule} {key.lstrip('+')}={value}"
            )
    return None


def typed_node_error(cause: BaseException | None, overrides: Sequence[str]) -> ConfigError | None:
    """OmegaConf's error for a value or key a structured config refuses, as one line:
    `KEY=VALUE: expected ...`; None for any other error."""
    if not isinstance(cause, ValidationError | ConfigAttributeError | ConfigKeyError):
        return None
    full_key, object_type = str(getattr(cause, "full_key", "")), getattr(cause, "object_type", None)
    if dataclasses.is_dataclass(object_type):
        try:
            key, fields = full_key, typing.get_type_hints(object_type)
        except (NameError, TypeError):  # annotations that do not resolve here
            return None
        expected = _describe(fields[cause.key]) if cause.key in fields else None
    elif isinstance(cause, ValidationError) and getattr(cause, "ref_type", Any) is not Any:
        # an element of a typed list or dict: the container's key and type
        key = re.sub(r"(\[[^]]*\]|\.[^.\[]*)$", "", full_key)
        fields, expected = {}, _describe(cause.ref_type)
    else:
        return None
    value = cause.value
    for override in parse_overrides(overrides):
        if override.key_or_group == key:
            value = override.get_value_element_as_str()
    if expected is not None:
        return ConfigError(f"{key}={value}: expected {expected}")
    # a key the node does not have
    options = [f for f in fields if f != "_target_"]
    near = difflib.get_close_matches(str(cause.key), options, n=1)
    if near:
        hint = f"did you mean {near[0]}?"
    elif options:
        hint = f"expected one of: {', '.join(options)}"
    else:
        group = key.rsplit(".", 1)[0].replace(".", "/")
        hint = f"{object_type.__name__} takes no options (pick another with {group}=NAME)"
    return ConfigError(f"{key}={value}: no such key; {hint}")


def unknown_key_error(
    cause: BaseException | None, overrides: Sequence[str], conf_dir: Path = CONF_DIR
) -> ConfigError | None:
    """Hydra's `Could not override 'KEY'` for a key the composed YAML lacks, as one line naming
    the closest keys beside it, or the key it reads through an interpolation; None for any
    other error."""
    parent = getattr(cause, "parent_node", None)
    if not isinstance(cause, ConfigAttributeError | ConfigKeyError) or not isinstance(
        parent, DictConfig
    ):
        return None
    key = str(getattr(cause, "full_key", "") or cause.key)
    for line, override in zip(overrides, parse_overrides(overrides), strict=True):
        # `optim_wrapper.optimizr.lr=0.1`: the key missing is `optim_wrapper.optimizr`
        if override.key_or_group == key or override.key_or_group.startswith(f"{key}."):
            others = [o for o in overrides if o != line]
            try:
                base = compose(others, conf_dir)
            except ConfigError:
                base = None
            error = base is not None and interpolation_error(line, override, base)
            if error:
                return error
            return loop_length_error(line, key, parent) or missing_key_error(
                line, key, list(parent)
            )
    return None


def interpolation_error(line: str, override: Override, cfg: DictConfig) -> ConfigError | None:
    """One line for an override that sets a key below a node that is `${TARGET}` in `cfg`
    (`model.data_preprocessor.seg_pad_val`, where `model.data_preprocessor` is
    `${data_preprocessor}`), naming the key to set instead; None for any other override.

    Hydra cannot set a key through an interpolation: without `+` it finds no such key, with
    `++` it replaces the node by a new one holding only that key, so every other value the
    node read (mean, std, size) is silently lost."""
    key = override.key_or_group
    node: Any = cfg
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, DictConfig) or part not in node:
            return None
        if OmegaConf.is_interpolation(node, part):
            found = re.fullmatch(r"\$\{([\w.]+)\}", str(node._get_node(part)._value()))
            if found is None:
                return None
            target = found.group(1) + "." + ".".join(parts[i + 1 :])
            parent, _, leaf = target.rpartition(".")
            siblings = OmegaConf.select(cfg, parent)
            value = override.get_value_element_as_str()
            exists = isinstance(siblings, DictConfig) and leaf in siblings
            if not exists and not line.startswith("+"):
                missing = missing_key_error(f"{target}={value}", target, list(siblings or []))
                return ConfigError(f"{line}: {'.'.join(parts[: i + 1])} reads {missing}")
            node_key = ".".join(parts[: i + 1])
            return ConfigError(
                f"{line}: {node_key} is ${{{found.group(1)}}}, the same node as "
                f"{found.group(1)}, which Hydra cannot change through {node_key}; set "
                f"{'' if exists else '+'}{target}={value}"
            )
        node = node._get_node(part)
    return None


def check_added_keys(overrides: Sequence[str], conf_dir: Path) -> None:
    """`+KEY=VALUE` and `++KEY=VALUE` overrides that would set a key through an interpolation
    (interpolation_error), checked against the config the other overrides compose."""
    added = [
        (line, override)
        for line, override in zip(overrides, parse_overrides(overrides), strict=True)
        if line.startswith("+") and "." in override.key_or_group and not override.is_delete()
    ]
    if not added:
        return
    try:
        base = compose([o for o in overrides if not o.startswith("+")], conf_dir)
    except ConfigError:
        return  # the other overrides' own error comes from composing them all
    for line, override in added:
        error = interpolation_error(line, override, base)
        if error:
            raise error


_PLURALS = {int: "integers", float: "numbers", str: "strings", bool: "true or false values"}


def _describe(type_: Any) -> str:
    """A field's type in words: `an integer`, `a list of integers or null`, `one of a, b`."""
    origin, args = typing.get_origin(type_), typing.get_args(type_)
    if origin in (typing.Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        words = " or ".join(_describe(a) for a in kinds)
        return f"{words} or null" if len(kinds) < len(args) else words
    if origin in (list, tuple, Sequence):
        return f"a list of {_PLURALS.get(args[0], 'values') if args else 'values'}"
    if origin in (dict, Mapping):
        return f"a mapping to {_PLURALS.get(args[1], 'values')}" if len(args) == 2 else "a mapping"
    if isinstance(type_, type) and issubclass(type_, enum.Enum):
        return "one of " + ", ".join(type_.__members__)
    words = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return words.get(type_, getattr(type_, "__name__", str(type_)))


def compose_reference(choices: Mapping[str, str | None], conf_dir: Path = CONF_DIR) -> DictConfig:
    """The same group options with no value overrides: the types the YAML declares."""
    return compose(
        [
            f"{group}={option}"
            for group, option in choices.items()
            if option is not None and not group.startswith("hydra")
        ],
        conf_dir,
    )
