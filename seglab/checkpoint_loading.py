"""Loading checkpoints and pretrained weights as data, never as code.

torch.load defaults to `weights_only=True`, and mmengine 0.10.7 calls it without saying more, so
loading a checkpoint that mmengine itself saved (its message hub holds `HistoryBuffer`s and numpy
arrays) fails. seglab replaces mmengine's loaders with ones that stay on the safe weights-only
unpickler and allow exactly the types mmengine's checkpoints contain. A file that holds anything
else fails to load with one line: nothing in it is executed.

Every scheme goes through the same loading. mmengine's own loader for `http(s)://`,
`open-mmlab://`, `mmcls://` and `torchvision://` ends in `torch.hub.load_state_dict_from_url`,
whose default is `weights_only=False`: a file placed in torch's hub cache would be fully
unpickled. Here a URL is only downloaded (or found in that cache), then loaded as a local file.

The one call a checkpoint needs beyond types is `getattr`: pickle names `HistoryBuffer.min` and
the other statistics methods a buffer stores as `getattr(HistoryBuffer, 'min')`. The unrestricted
builtin must never be allowed: with it, a pickle reaches any attribute of anything (the builtins
module through `getattr.__self__`, then `eval`), and torch's own `_rebuild_from_type_v2` calls
what it is given. So the name `builtins.getattr` maps to a getattr that answers only those methods.

Allowed types are not enough: what they are put together into matters too. mmengine's resume
runs `meta['config']` as a Python config file when `'config' in meta`; a numpy structured scalar
answers both (`in` looks at its field values, `[...]` at its field names). So after loading, the
checkpoint and its `meta` must be plain dicts and numpy may hold only numbers and booleans.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from seglab.errors import ConfigError

# HistoryBuffer's statistics methods (mmengine registers these four by default)
HISTORY_BUFFER_STATISTICS = frozenset({"min", "max", "mean", "current"})
# numpy kinds a checkpoint may hold: booleans, integers, floats, complex numbers (no strings,
# bytes, objects, dates or structured records)
NUMPY_KINDS = frozenset("biufc")
URL_PREFIXES = ("http://", "https://")
NAMED_PREFIXES = ("open-mmlab://", "openmmlab://", "mmcls://", "torchvision://", "modelzoo://")


def history_buffer_statistic(owner: object, name: str):
    """`getattr` as a checkpoint may use it: one of HistoryBuffer's statistics methods."""
    if owner is HistoryBuffer and name in HISTORY_BUFFER_STATISTICS | set(
        HistoryBuffer._statistics_methods
    ):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f"the checkpoint asks for getattr({type(owner).__name__}, {name!r}); only "
        "HistoryBuffer's statistics methods may be named"
    )


def mmengine_checkpoint_types() -> list:
    """What an mmengine checkpoint's `meta` and `message_hub` pickle besides tensors."""
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    dtypes = [type(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.int32, np.bool_)]
    return [
        HistoryBuffer,
        (history_buffer_statistic, "builtins.getattr"),
        np.ndarray,
        np.dtype,
        _reconstruct,
        scalar,
        *dtypes,
    ]


class UnsafeCheckpointError(ConfigError, pickle.UnpicklingError):
    """A checkpoint that asks to run or build something beyond tensors and mmengine's types."""


def load_local_checkpoint(filename: str, map_location=None):
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f"{filename} can not be found.")
    return _load_as_data(filename, filename, map_location)


def _load_as_data(name: str, source: str | io.BytesIO, map_location=None):
    """`source` (the file `name`, or its content) through the weights-only unpickler, then the
    checks of its shape; any failure is one UnsafeCheckpointError naming `name`."""
    try:
        with torch.serialization.safe_globals(mmengine_checkpoint_types()):
            checkpoint = torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise _refused(name, _reason(str(err))) from None
    except Exception as err:  # whatever a crafted or damaged file makes the unpickler raise
        raise _refused(name, f"{type(err).__name__}: {_reason(str(err))}") from None
    problem = unexpected_shape(checkpoint)
    if problem:
        raise _refused(name, problem)
    return escaped_strings(checkpoint)


def _refused(filename: str, reason: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f"{filename}: refused to load: {reason}; seglab loads tensors and mmengine's own "
        "types from a checkpoint and runs nothing in it"
    )


def _reason(message: str) -> str:
    """The line of torch's long weights-only message that says what the file asked for."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    reasons = [line for line in lines if not line.startswith(boilerplate)]
    return ascii((reasons or lines or ["unknown reason"])[0])[1:-1]


def unexpected_shape(checkpoint: object) -> str | None:
    """Why `checkpoint` is not shaped as mmengine writes one, or None.

    A checkpoint is a dict (a bare state dict counts); its `meta`, where present, a dict; numpy
    values hold numbers or booleans only."""
    if not isinstance(checkpoint, dict):
        return f"the file holds a {type(checkpoint).__name__}, expected a dict"
    meta = checkpoint.get("meta")
    if meta is not None and not isinstance(meta, dict):
        return f"its 'meta' is a {type(meta).__name__}, expected a dict"
    weights = checkpoint.get("state_dict", checkpoint)  # a bare state dict is its own
    if not isinstance(weights, dict):
        return f"its 'state_dict' is a {type(weights).__name__}, expected a dict"
    odd_key = next((k for k in weights if not isinstance(k, str)), None)
    if odd_key is not None:
        return f"its state dict has a key of type {type(odd_key).__name__}, expected names"
    if "state_dict" in checkpoint:
        odd = next((k for k, v in weights.items() if not isinstance(v, torch.Tensor)), None)
        if odd is not None:
            kind = type(weights[odd]).__name__
            return f"its state dict holds a {kind} under {ascii(odd)}, expected tensors"
    for node in every_object(checkpoint):
        if isinstance(node, (np.ndarray, np.generic, np.dtype)):
            dtype = node if isinstance(node, np.dtype) else node.dtype
            if dtype.kind not in NUMPY_KINDS or dtype.fields is not None:
                return f"it holds numpy data of dtype {ascii(str(dtype))}, expected numbers"
    return None


def every_object(root: object) -> Iterator[object]:
    """`root` and everything its containers (and HistoryBuffers) hold, each once (a pickle
    may share objects or make cycles), without recursion (a pickle may nest deeper than
    Python's stack). A container is yielded before what it holds is visited: the caller may
    replace its contents."""
    seen: set[int] = set()
    pending: list[object] = [root]
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        if isinstance(node, dict):
            pending.extend(node.keys())
            pending.extend(node.values())
        elif isinstance(node, (list, tuple, set, frozenset)):
            pending.extend(node)
        elif isinstance(node, HistoryBuffer):
            pending.extend(vars(node).values())


def check_fits(model: torch.nn.Module, checkpoint: dict, source: str) -> None:
    """Every weight of `model` is in `checkpoint`, each of its shape.

    mmengine loads what matches and logs the rest as a warning; for a test or an inference,
    a weight left at its random start makes a result that looks normal and is wrong."""
    from mmengine.model import BaseTTAModel, is_model_wrapper

    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    weights = checkpoint.get("state_dict", checkpoint)
    weights = {re.sub(r"^module\.", "", key): value for key, value in weights.items()}
    wrong_shape, missing = [], []
    for key, value in model.state_dict().items():
        if key not in weights:
            missing.append(f"{key} is missing")
        elif tuple(getattr(weights[key], "shape", ())) != tuple(value.shape):
            wrong_shape.append(
                f"{ascii(key)[1:-1]} is {list(getattr(weights[key], 'shape', ()))} there, "
                f"{list(value.shape)} in the model"
            )
    problems = wrong_shape + missing
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(
            f"{source}: does not fit the model: {problems[0]}{more}; expected a checkpoint "
            "trained with this config (the run's own, or give config= the one it was trained with)"
        )


def escaped_strings(checkpoint: dict) -> dict:
    """The checkpoint with control characters in its dicts' and lists' strings written as
    escapes (`\\x1b`): mmengine prints the keys that do not match the model with `print`, and
    a key carrying a terminal escape sequence would move the cursor or retitle the terminal. No
    weight is lost: such a key never names a parameter (their names are Python identifiers)."""
    from seglab.masking import CONTROL_CHARACTERS, escape_control_characters

    def clean(value):
        if isinstance(value, str) and CONTROL_CHARACTERS.search(value):
            return escape_control_characters(value)
        return value

    for node in every_object(checkpoint):
        if isinstance(node, dict):
            items = [(clean(k), clean(v)) for k, v in node.items()]
            if [k for k, _ in items] != list(node) or any(
                isinstance(v, str) and v is not node[k] for k, v in items
            ):
                node.clear()
                node.update(items)
        elif isinstance(node, list):
            node[:] = [clean(v) for v in node]
    return checkpoint


def weights_url(source: str) -> str:
    """The http(s) URL (or, for an open-mmlab:// name mmengine keeps locally, the path) that
    mmengine's tables give a named weights file."""
    from mmengine.runner import checkpoint as mm

    if source.startswith(URL_PREFIXES):
        return source
    prefix = next((p for p in NAMED_PREFIXES if source.startswith(p)), None)
    if prefix is None:
        raise ValueError(f"{source!r} names no weights scheme")
    name = source[len(prefix) :]
    if prefix in ("open-mmlab://", "openmmlab://"):
        name = mm.get_deprecated_model_names().get(name, name)
        table = mm.get_external_models()
    elif prefix == "mmcls://":
        table = mm.get_mmcls_models()
    else:
        table = mm.get_torchvision_models()  # imports torchvision, a requirement of its own
    if name not in table:
        raise ConfigError(
            f"{source!r}: mmengine knows no weights of that name; expected one of "
            f"{prefix}{{{', '.join(sorted(table)[:5])}, ...}} or a local file"
        )
    url = table[name]
    if url.startswith(URL_PREFIXES):
        return url
    return os.path.join(mm._get_mmengine_home(), url)


def hub_cache_file(url: str) -> Path:
    """Where torch (and mmengine) keep the file downloaded from `url`."""
    return Path(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path))


def load_from_url(url: str, map_location=None):
    """Download `url` into torch's hub cache unless it is there (rank 0 first, as mmengine
    does), then load the file as data."""
    from mmengine.dist import get_dist_info

    if not url.startswith(URL_PREFIXES):  # an open-mmlab:// name kept in mmengine's home
        return load_local_checkpoint(url, map_location)
    cached = hub_cache_file(url)
    rank, world_size = get_dist_info()
    if rank == 0:
        _download(url, cached)
    if world_size > 1:
        torch.distributed.barrier()
        _download(url, cached)  # there already, unless ranks see different file systems
    return _load_as_data(str(cached), _legacy_zip_content(cached) or str(cached), map_location)


def _download(url: str, cached: Path) -> None:
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        # writes a temporary file and renames it into place: a stopped download leaves nothing
        torch.hub.download_url_to_file(url, str(cached), progress=False)


def _legacy_zip_content(path: Path) -> io.BytesIO | None:
    """The pickle inside torch's legacy hub format, a zip around one file (older torchvision
    weights), read into memory; None for any other file. Nothing is extracted: a member's name
    must never choose which file of the cache is written (it could replace other weights)."""
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        if any(m.filename.endswith("data.pkl") for m in members):  # torch's own zip format
            return None
        if len(members) != 1 or members[0].is_dir():
            names = [m.filename for m in members[:3]]
            raise _refused(str(path), f"a zip holding {names}, expected one checkpoint file")
        return io.BytesIO(archive.read(members[0]))


def _named_loader(process: Callable | None = None) -> Callable:
    def load(filename: str, map_location=None):
        checkpoint = load_from_url(weights_url(filename), map_location)
        return process(checkpoint) if process else checkpoint

    load.__name__ = "load_from_named_weights"  # mmengine's log line names the loader by it
    return load


def register() -> None:
    """Make every mmengine checkpoint scheme (`load_from`, `resume`, `load_checkpoint`,
    `init_cfg=dict(type='Pretrained')`) load through the functions above."""
    from mmengine.runner.checkpoint import _process_mmcls_checkpoint

    loaders = {
        "": load_local_checkpoint,
        URL_PREFIXES: load_from_url,
        ("open-mmlab://", "openmmlab://"): _named_loader(),
        ("torchvision://", "modelzoo://"): _named_loader(),
        "mmcls://": _named_loader(_process_mmcls_checkpoint),
    }
    for prefixes, loader in loaders.items():
        CheckpointLoader.register_scheme(prefixes=prefixes, loader=loader, force=True)
