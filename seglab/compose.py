"""Composing the Hydra config tree under conf/ outside of a Hydra run (export, tests, checks)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path

import hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from seglab import resolvers  # noqa: F401  (registers the resolvers the YAML uses)
from seglab.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
CONFIG_NAME = "config"


def groups(conf_dir: Path = CONF_DIR) -> list[str]:
    """The config groups: each folder of conf/ (experiment/ links to experiments/); `_delete_`
    holds what generated experiments include, not options to pick."""
    return sorted(p.name for p in conf_dir.iterdir() if p.is_dir() and not p.name.startswith("_"))


def group_options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """A group's options; those in subfolders by their path (`segformer/segformer_mit-b0_...`)."""
    folder = conf_dir / group
    return sorted(str(p.relative_to(folder).with_suffix("")) for p in folder.rglob("*.yaml"))


def check_group_choices(overrides: Sequence[str], conf_dir: Path = CONF_DIR) -> None:
    """An unknown group option is one line naming the closest options, before Hydra composes."""
    known = groups(conf_dir)
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        group = override.key_or_group.lstrip("/")
        if group not in known or override.package is not None:
            continue
        values = (
            list(override.sweep_string_iterator())
            if override.is_sweep_override()
            else [override.value()]
        )
        options = group_options(group, conf_dir)
        for value in values:
            if value is None and group == "experiment":
                continue
            if value not in options:
                raise ConfigError(
                    f"{group}={value}: no such {group} option; {_closest(value, options)}"
                )


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
    return all(o.split("=", 1)[0].lstrip("+~/") in known for o in overrides)


def compose(overrides: Sequence[str] = (), conf_dir: Path = CONF_DIR) -> DictConfig:
    """The config `python -m seglab OVERRIDES` would run, with its `hydra` node."""
    check_group_choices(overrides, conf_dir)
    if GlobalHydra.instance().is_initialized():
        return hydra.compose(CONFIG_NAME, overrides=list(overrides), return_hydra_config=True)
    with hydra.initialize_config_dir(str(conf_dir), version_base="1.3"):
        return hydra.compose(CONFIG_NAME, overrides=list(overrides), return_hydra_config=True)


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
