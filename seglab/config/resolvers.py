"""OmegaConf resolvers the YAML groups use, registered by `register_resolvers()`: compose(),
to_container() and the training task (before Hydra composes, in every process) call it.

The names of run and sweep directories are seglab.run_dirs'; the resolvers here only call it."""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import ListConfig, OmegaConf

from seglab.config import data_layout, synthetic_data
from seglab.masking import hydra_masked
from seglab.run_dirs.lock import choose_run_dir
from seglab.run_dirs.names import command_sweep_name, run_name

# OmegaConf has no tuple, and OmegaConf.resolve (Hydra's `--cfg job --resolve`) writes each
# resolved value back into its node, which refuses one ("Value 'tuple' is not a supported
# primitive type"): while this is set, as_tuple gives a ListConfig, which a node can hold.
_AS_LISTS: contextvars.ContextVar[bool] = contextvars.ContextVar("as_lists", default=False)


@contextmanager
def tuples_as_lists() -> Iterator[None]:
    """`${as_tuple:...}` resolves to a list meanwhile: for a config that OmegaConf itself
    resolves in place and prints, never for one converted for mmengine."""
    token = _AS_LISTS.set(True)
    try:
        yield
    finally:
        _AS_LISTS.reset(token)


def as_tuple(*items: Any) -> tuple | ListConfig | None:
    """`${as_tuple:512,512}` or `${as_tuple:${dataset.crop_size}}` -> (512, 512).

    mmseg asserts tuples in places (RandomCrop.crop_size, Resize.scale) while OmegaConf only
    knows lists; a resolver's tuple survives `OmegaConf.to_container`. Within
    tuples_as_lists, a ListConfig of the same items.
    """
    if items == (None,):
        return None  # a data set without a crop size: no size where it would go
    if len(items) == 1 and isinstance(items[0], (list, tuple, ListConfig)):
        items = tuple(items[0])
    values = tuple(OmegaConf.to_container(i) if isinstance(i, ListConfig) else i for i in items)
    return ListConfig(list(values)) if _AS_LISTS.get() else values


def length(items: Sequence) -> int:
    """`${len:${dataset.classes}}`: the class count follows the class names."""
    return len(items)


def cache_dir(name: str) -> str:
    """Where seglab keeps what it generates: $SEGLAB_CACHE, else ~/.cache/seglab."""
    root = os.environ.get("SEGLAB_CACHE") or os.path.join(Path.home(), ".cache", "seglab")
    return os.path.join(root, name)


def run_dir(root: str, override_dirname: str, resume: Any) -> str:
    """`hydra.run.dir`: `root/NAME` (run_name), or `-2`, `-3`, ... when that one holds
    an earlier run; with `resume` the newest of them (choose_run_dir).

    It reads the file system and claims the directory it returns for this process, so its
    value depends on when it is resolved. What seglab relies on is one resolution, the first in
    the process that trains: RunDirCallback.on_run_start (TorchrunCallback on rank 0 under
    torchrun, which sends it to the other ranks) resolves it before Hydra creates anything and
    puts the plain value in its place, which is what Hydra then reads, as often as it does.
    Resolved again in the same process all the same, it returns the directory this process
    claimed, never a new one.
    """
    return choose_run_dir(root, run_name(override_dirname), resume)


def register_resolvers() -> None:
    """Register every resolver the YAML uses with OmegaConf; again, a no-op."""
    for name, fn in {
        "as_tuple": as_tuple,
        "len": length,
        "cache_dir": cache_dir,
        "synthetic_name": synthetic_data.cache_name,
        "run_name": run_name,
        "run_dir": run_dir,
        "sweep_name": command_sweep_name,
        "hydra_masked": hydra_masked,
        # dataset=custom: what the user's folder says, where they set nothing
        "image_suffix": data_layout.image_suffix,
        "label_suffix": data_layout.label_suffix,
        "image_crop": data_layout.image_crop,
        "image_scale": data_layout.image_scale,
    }.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
