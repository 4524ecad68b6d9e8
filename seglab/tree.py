"""Walking a config tree: nested mappings and lists, as mmengine's Config and OmegaConf's
containers hold them (`model.decode_head[0].loss_decode.type`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


def child_path(path: str, key: Any) -> str:
    """`path.key` for a mapping's key, `path[i]` for a list's index (`key` alone at the top)."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def nodes(tree: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, node) of `tree` and of everything below it, each parent before its children.

    Mappings and lists (and tuples) are gone into; anything else is a leaf. A mapping may be
    changed in place while it is walked, as long as its keys stay (a `type` rewritten)."""
    yield path, tree
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            yield from nodes(value, child_path(path, key))
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from nodes(value, child_path(path, i))


def leaves(tree: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every value in `tree` that is neither a mapping nor a list."""
    for where, node in nodes(tree, path):
        if not isinstance(node, (Mapping, list, tuple)):
            yield where, node


def key_of(path: str) -> str:
    """The last mapping key of a path (`model.backbone.type` -> `type`); "" after an index."""
    return path.rpartition(".")[2] if not path.endswith("]") else ""
