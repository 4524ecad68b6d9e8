"""Composing the Hydra config tree under conf/ outside of a Hydra run (export, tests, checks)."""

from __future__ import annotations

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


def groups() -> list[str]:
    """The config groups: each folder of conf/ (experiment/ links to experiments/)."""
    return sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def check_group_choices(overrides: Sequence[str]) -> None:
    """Unknown group options as one line that lists the options, before Hydra composes."""
    known = groups()
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        group = override.key_or_group.lstrip("/")
        if group not in known or override.package is not None:
            continue
        values = (
            list(override.sweep_string_iterator())
            if override.is_sweep_override()
            else [override.value()]
        )
        options = group_options(group)
        for value in values:
            if value is None and group == "experiment":
                continue
            if value not in options:
                raise ConfigError(
                    f"{group}={value}: no such {group} option; expected one of: "
                    + ", ".join(options)
                )


def only_group_choices(overrides: Sequence[str]) -> bool:
    """Whether `overrides` only pick group options (`model=...`), changing no value."""
    known = groups()
    return all(o.split("=", 1)[0].lstrip("+~/") in known for o in overrides)


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The config `python -m seglab OVERRIDES` would run, with its `hydra` node."""
    check_group_choices(overrides)
    if GlobalHydra.instance().is_initialized():
        return hydra.compose(CONFIG_NAME, overrides=list(overrides), return_hydra_config=True)
    with hydra.initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return hydra.compose(CONFIG_NAME, overrides=list(overrides), return_hydra_config=True)


def compose_reference(choices: Mapping[str, str | None]) -> DictConfig:
    """The same group options with no value overrides: the types the YAML declares."""
    return compose(
        [
            f"{group}={option}"
            for group, option in choices.items()
            if option is not None and not group.startswith("hydra")
        ]
    )
