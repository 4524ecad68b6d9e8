"""A command-line override as text (`KEY=VALUE`, `+KEY=VALUE`, `~KEY`, `/GROUP=OPTION`), read
one way everywhere: its key without Hydra's prefixes, and its value.

Hydra parses the overrides it composes; seglab reads them again where it names, reports or
fits a run (which keys the command line set), and this is the one reading.
"""

from __future__ import annotations

from collections.abc import Iterable

# Hydra's add (+), force-add (++) and delete (~); a group may be named by its path (/model)
PREFIXES = "+~"


def split_override(override: str) -> tuple[str, str]:
    """(key, value) of `override`: the key without `+`, `++`, `~` or a group's leading `/`;
    the value as written ("" for `~KEY`)."""
    key, _, value = str(override).partition("=")
    return key.lstrip(PREFIXES).lstrip("/"), value


def override_key(override: str) -> str:
    return split_override(override)[0]


def override_keys(overrides: Iterable[str]) -> set[str]:
    """The keys `overrides` set (or delete), without Hydra's prefixes."""
    return {override_key(o) for o in overrides}


def as_mapping(overrides: Iterable[str]) -> dict[str, str]:
    """{key: value} of `overrides` (the last one wins, as in Hydra)."""
    return dict(split_override(o) for o in overrides)
