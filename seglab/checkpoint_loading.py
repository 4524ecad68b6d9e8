"""Loading checkpoints with torch >= 2.6 without unpickling arbitrary objects.

torch.load defaults to `weights_only=True`, and mmengine 0.10.7 calls it without saying more, so
loading a checkpoint that mmengine itself saved (its message hub holds `HistoryBuffer`s and numpy
arrays) fails. seglab replaces mmengine's local-file loader with one that stays on the safe
weights-only unpickler and allows exactly the types mmengine's checkpoints contain. A file that
holds anything else still fails to load: nothing in it is executed.

The one call a checkpoint needs beyond types is `getattr`: pickle names `HistoryBuffer.min` and
the other statistics methods a buffer stores as `getattr(HistoryBuffer, 'min')`. The unrestricted
builtin must never be allowed: with it, a pickle reaches any attribute of anything (the builtins
module through `getattr.__self__`, then `eval`), and torch's own `_rebuild_from_type_v2` calls
what it is given. So the name `builtins.getattr` maps to a getattr that answers only those methods.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from seglab.errors import ConfigError

# HistoryBuffer's statistics methods (mmengine registers these four by default)
HISTORY_BUFFER_STATISTICS = frozenset({"min", "max", "mean", "current"})


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
    try:
        with torch.serialization.safe_globals(mmengine_checkpoint_types()):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f"{filename}: refused to load: {_reason(str(err))}; seglab loads tensors and "
            "mmengine's own types from a checkpoint and runs nothing in it"
        ) from None


def _reason(message: str) -> str:
    """The line of torch's long weights-only message that says what the file asked for."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    reasons = [line for line in lines if not line.startswith(boilerplate)]
    return (reasons or lines or ["unknown reason"])[0]


def register() -> None:
    """Make mmengine's `load_from`, `resume` and `load_checkpoint` use the loader above."""
    CheckpointLoader.register_scheme(prefixes="", loader=load_local_checkpoint, force=True)


register()
