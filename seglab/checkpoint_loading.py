"""Loading checkpoints with torch >= 2.6 without unpickling arbitrary objects.

torch.load defaults to `weights_only=True`, and mmengine 0.10.7 calls it without saying more, so
loading a checkpoint that mmengine itself saved (its message hub holds `HistoryBuffer`s and numpy
arrays) fails. seglab replaces mmengine's local-file loader with one that stays on the safe
weights-only unpickler and allows exactly the types mmengine's checkpoints contain. A file that
holds anything else still fails to load: nothing in it is executed.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


def mmengine_checkpoint_types() -> list:
    """What an mmengine checkpoint's `meta` and `message_hub` pickle besides tensors.

    `getattr` is how pickle names `HistoryBuffer.min` and the other statistics methods a
    buffer stores; the weights-only unpickler never calls what it returns.
    """
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    dtypes = [type(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.int32, np.bool_)]
    return [HistoryBuffer, getattr, np.ndarray, np.dtype, _reconstruct, scalar, *dtypes]


def load_local_checkpoint(filename: str, map_location=None):
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f"{filename} can not be found.")
    with torch.serialization.safe_globals(mmengine_checkpoint_types()):
        return torch.load(filename, map_location=map_location, weights_only=True)


def register() -> None:
    """Make mmengine's `load_from`, `resume` and `load_checkpoint` use the loader above."""
    CheckpointLoader.register_scheme(prefixes="", loader=load_local_checkpoint, force=True)


register()
