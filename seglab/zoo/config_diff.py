"""From a composed seglab config and an upstream mmseg config to the YAML that closes the gap.

`solve` starts from the unresolved composition (its `${...}` links intact) and edits it until it
resolves to upstream's values: a difference is first written where its link leads (setting
`dataset.crop_size` moves every crop that follows it); where that would change a place upstream
leaves alone, the link is cut at the place that differs and upstream's literal kept there (a
note says so). `emit` then keeps only what differs from the composition, as Hydra can merge it:
a node that loses keys or changes kind is first set to null by a `_delete_/<key>` config (what
upstream's `_delete_=True` does).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf

from seglab.config.parity import RUNNER_KEYS
from seglab.config.resolvers import register_resolvers
from seglab.errors import ConfigError

KeyPath = tuple[Any, ...]  # keys and list indices, from the root

_REF = re.compile(r"^\$\{([A-Za-z_][\w.]*)\}$")
_TUPLE_REF = re.compile(r"^\$\{as_tuple:\$\{([A-Za-z_][\w.]*)\}\}$")
_SIMPLE_KEY = re.compile(r"^[A-Za-z_][\w-]*$")
MAX_ROUNDS = 400


def reference(node: Any) -> tuple[KeyPath, bool] | None:
    """(target path, through as_tuple) when `node` is a pure link `${a.b}`/`${as_tuple:${a.b}}`."""
    if not isinstance(node, str):
        return None
    for pattern, tupled in ((_REF, False), (_TUPLE_REF, True)):
        match = pattern.match(node)
        if match:
            return tuple(match.group(1).split(".")), tupled
    return None


def encode(value: Any) -> Any:
    """Plain Python to YAML-able values: a tuple becomes `${as_tuple:...}` (OmegaConf has none)."""
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, tuple):
        if any(isinstance(v, (dict, list, tuple)) for v in value):
            raise ConfigError(f"{value!r}: a tuple holding containers has no YAML form")
        return "${as_tuple:" + ",".join(_grammar(v) for v in value) + "}"
    return value


def _grammar(value: Any) -> str:
    """One resolver argument in OmegaConf's grammar."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def resolve(work: dict) -> dict:
    """What `work` resolves to, restricted to the keys the parity rule compares."""
    register_resolvers()  # once per resolution, not per value
    resolved = {k: resolve_node(work, work[k]) for k in work if k in RUNNER_KEYS}
    if "resume" in resolved:
        resolved["resume"] = bool(resolved["resume"])
    # seglab's `compile: false` (conf/config.yaml) is mmengine's default: no compile key at all
    if resolved.get("compile") is False:
        del resolved["compile"]
    return resolved


def resolve_node(work: dict, node: Any, depth: int = 0) -> Any:
    """`node` of `work` with its interpolations resolved, as OmegaConf resolves them.

    Plain Python, because the solver resolves thousands of candidates and OmegaConf builds its
    node tree each time; an interpolation other than a link or a literal `as_tuple` goes
    through OmegaConf."""
    if depth > 50:
        raise ConfigError("a link that leads to itself")
    if isinstance(node, dict):
        return {k: resolve_node(work, v, depth) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_node(work, v, depth) for v in node]
    if isinstance(node, str) and "${" in node:
        ref = reference(node)
        if ref is None:
            return _omegaconf_value(work, node)
        target, tupled = ref
        try:
            value = resolve_node(work, _get(work, target), depth + 1)
        except (KeyError, IndexError, TypeError):
            raise ConfigError(f"{node}: no such key") from None
        return tuple(value) if tupled and value is not None else value
    return node


_LITERALS: dict[str, Any] = {}


def _omegaconf_value(work: dict, text: str) -> Any:
    if text.startswith("${as_tuple:") and "${" not in text[2:]:
        if text not in _LITERALS:
            _LITERALS[text] = OmegaConf.create({"v": text}).v
        return _LITERALS[text]
    cfg = OmegaConf.create({**work, "_seglab_value_": text})
    return OmegaConf.to_container(cfg, resolve=True)["_seglab_value_"]


def _get(tree: Any, path: KeyPath) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _set(tree: Any, path: KeyPath, value: Any) -> None:
    for key in path[:-1]:
        if isinstance(tree, dict) and key not in tree:
            tree[key] = {}
        tree = tree[key]
    tree[path[-1]] = value


# A difference: (path, kind) with kind "value", "missing" (only upstream has it) or "extra".
Diff = tuple[KeyPath, str]


def diffs(ours: Any, theirs: Any, path: KeyPath = ()) -> Iterator[Diff]:
    """Where `ours` differs from `theirs`; lists of equal length are compared item by item,
    anything else that differs (a tuple for a list, another length) as a whole."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in theirs:
            if key not in ours:
                yield (*path, key), "missing"
            else:
                yield from diffs(ours[key], theirs[key], (*path, key))
        for key in ours:
            if key not in theirs:
                yield (*path, key), "extra"
        return
    if type(ours) is not type(theirs):
        yield path, "value"
    elif isinstance(ours, list) and len(ours) == len(theirs):
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            yield from diffs(a, b, (*path, i))
    elif ours != theirs:
        yield path, "value"


@dataclass
class Located:
    home: KeyPath  # where the value is stored, every link followed
    crossings: list[KeyPath]  # the places holding a link on the way, outermost first
    tupled: bool  # the last link passed through as_tuple


def locate(work: dict, path: KeyPath) -> Located:
    node, here, crossings, tupled = work, (), [], False

    def follow() -> None:
        nonlocal node, here, tupled
        while (ref := reference(node)) is not None:
            crossings.append(here)
            here, tupled = ref
            node = _get(work, here)

    for key in path:
        follow()
        if isinstance(node, str) or key not in (
            node if isinstance(node, dict) else range(len(node))
        ):
            break  # inside a value an interpolation computes: write it as a whole
        node, here, tupled = node[key], (*here, key), False
    else:
        follow()
    return Located(here, crossings, tupled)


def _materialize(work: dict, at: KeyPath) -> None:
    """Replace the link at `at` by a copy of what it points to (its own links kept)."""
    node = _get(work, at)
    while (ref := reference(node)) is not None:
        target, tupled = ref
        node = _get(work, target)
        if tupled:
            node = encode(tuple(node))
    _set(work, at, copy.deepcopy(node))


@dataclass
class Solution:
    work: dict
    notes: list[str] = field(default_factory=list)


def solve(base: dict, target: dict, link: Any = None) -> Solution:
    """Edit a copy of `base` (unresolved) until it resolves to `target` on every compared key.

    `link(value, path, work)` may replace parts of a value about to be written by links to
    the shared values they equal (see seglab/zoo/links.py)."""
    work = copy.deepcopy(base)
    notes: list[str] = []
    link = link or (lambda value, path, work: encode(value))
    for _ in range(MAX_ROUNDS):
        current = list(diffs(resolve(work), target))
        if not current:
            return Solution(work, notes)
        if not _fix_all_at_home(work, current, target, link) and not _fix_one(
            work, current, target, link, notes
        ):
            break
    left = list(diffs(resolve(work), target))
    path, kind = left[0]
    wanted = repr(_get(target, path)) if kind != "extra" else "no such key"
    raise ConfigError(f"{_dotted(path)}={wanted[:80]}: seglab's YAML cannot express it ({kind})")


def _candidate(work: dict, d: Diff, target: dict, link: Any, cut: int | None) -> dict:
    """`work` with the difference `d` written at its home (cut=None) or with the links along
    its path cut from crossing number `cut` inwards."""
    path, kind = d
    trial = copy.deepcopy(work)
    where = path[:-1] if kind in ("missing", "extra") else path
    if cut is not None:
        while len((found := locate(trial, where)).crossings) > cut:
            _materialize(trial, found.crossings[cut])
    found = locate(trial, where)
    home = found.home
    if kind == "extra":
        del _get(trial, home)[path[-1]]
    elif kind == "missing":
        _set(trial, (*home, path[-1]), link(_get(target, path), (*home, path[-1]), trial))
    else:
        value = _get(target, path)
        if found.tupled and isinstance(value, tuple):
            value = list(value)  # the home holds the list that as_tuple turns into this tuple
        _set(trial, home, link(value, home, trial) if not found.tupled else value)
    return trial


def _fix_all_at_home(work: dict, current: list[Diff], target: dict, link: Any) -> bool:
    """Write every difference where its links lead, at once; kept only if nothing that agreed
    breaks (most configs need nothing more)."""
    trial = work
    for d in current:
        try:
            trial = _candidate(trial, d, target, link, None)
        except Exception:  # this one is left to _fix_one
            continue
    try:
        after = set(diffs(resolve(trial), target))
    except Exception:  # noqa: BLE001  (edits that together do not resolve: _fix_one goes one by one)
        return False
    if after < set(current):
        work.clear()
        work.update(trial)
        return True
    return False


def _fix_one(work: dict, current: list[Diff], target: dict, link: Any, notes: list[str]) -> bool:
    """Fix the first difference without breaking a place that agrees; False when impossible.

    Tried in turn: written where its links lead; its own links cut from the innermost
    outwards (the shared value stays what most places use); written at its home after pinning
    the places that would break (their link cut, so they keep their value)."""
    before = set(current)
    # shared values first: a scalar at the end of a link moves every use at once
    current.sort(key=lambda d: len(locate(work, d[0]).crossings) == 0)
    for d in current:
        where = d[0] if d[1] == "value" else d[0][:-1]
        depth = len(locate(work, where).crossings)
        pin_notes: list[str] = []
        for cut in [None, *range(depth - 1, -1, -1), "pin"]:
            try:
                base = work
                if cut == "pin":
                    base, pin_notes = _pinned(work, d, target, link, before)
                trial = _candidate(base, d, target, link, None if cut == "pin" else cut)
                after = set(diffs(resolve(trial), target))
            except Exception:  # an edit that does not resolve is not a candidate
                continue
            if d not in after and after <= before:
                if cut == "pin":
                    notes.extend(pin_notes)
                elif cut is not None:
                    notes.append(_cut_note(work, d, cut))
                work.clear()
                work.update(trial)
                return True
    return False


def _pinned(work: dict, d: Diff, target: dict, link: Any, before: set) -> tuple[dict, list[str]]:
    """`work` with the places that writing `d` at its home would break cut from that home,
    and a note for each place cut."""
    notes: list[str] = []
    where = d[0] if d[1] == "value" else d[0][:-1]
    home = locate(work, where).home
    broken = set(diffs(resolve(_candidate(work, d, target, link, None)), target)) - before
    pinned = copy.deepcopy(work)
    for path, kind in broken:
        found = locate(pinned, path if kind == "value" else path[:-1])
        for crossing in reversed(found.crossings):
            linked, _ = reference(_get(pinned, crossing))
            if linked[: len(home)] == home or home[: len(linked)] == linked:
                notes.append(
                    f"{_dotted(crossing)} keeps upstream's value, not `{_get(pinned, crossing)}`"
                )
                _materialize(pinned, crossing)
                break
    return pinned, notes


def _cut_note(work: dict, d: Diff, cut: int) -> str:
    """Where upstream's own values disagree: the place, and the link it does not follow."""
    path, kind = d
    crossing = locate(work, path if kind == "value" else path[:-1]).crossings[cut]
    link = _get(work, crossing)
    return f"{_dotted(path)} differs from where `{_dotted(crossing)}: {link}` leads; written out"


def _dotted(path: KeyPath) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")


_NOCHANGE = object()


def emit(base: Any, work: Any, path: KeyPath = (), deletes: list[str] | None = None) -> Any:
    """The YAML patch that turns `base` into `work` under Hydra's merge; `deletes` collects the
    nodes that must first be set to null (a dict losing keys, a node changing kind)."""
    if base == work:
        return _NOCHANGE
    if isinstance(base, dict) and isinstance(work, dict):
        if set(base) - set(work):
            if not path or not all(_SIMPLE_KEY.match(str(k)) for k in path):
                raise ConfigError(
                    f"{_dotted(path) or 'the root'}: cannot delete {set(base) - set(work)}"
                )
            deletes.append(_dotted(path))
            return work
        out = {}
        for key, value in work.items():
            sub = emit(base[key], value, (*path, key), deletes) if key in base else value
            if sub is not _NOCHANGE:
                out[key] = sub
        return out
    kind_changes = isinstance(base, (dict, list)) and type(base) is not type(work)
    replaces_a_link = isinstance(base, str) and "${" in base and isinstance(work, (dict, list))
    if path and (kind_changes or replaces_a_link):
        deletes.append(_dotted(path))
    return work


def patch(base: dict, work: dict) -> tuple[dict, list[str]]:
    deletes: list[str] = []
    out = emit(base, work, (), deletes)
    return ({} if out is _NOCHANGE else out), deletes
