"""Data loader workers fitted to the machine a run starts on.

Upstream's configs ask for the workers of the machines they were trained on (ADE20K: 4 per
GPU); torch warns, twice, when a loader asks for more processes than the CPUs this process may
use, and the extra workers only contend for those CPUs. A loader's `num_workers` above that
count is lowered to it, said once, and written into the exported config, as seglab does for
the logger's interval; a value the command line sets is kept.
"""

from __future__ import annotations

import os
from collections.abc import Collection

from mmengine.config import Config

LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, as torch counts them)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform
        return os.cpu_count() or 1


def fit_loader_workers(mm_cfg: Config, keys: Collection[str]) -> str | None:
    """Lower each loader's `num_workers` above `usable_cpus()` to it; return the changes as
    `KEY=VALUE, ... (was ...; N CPUs)`, or None. A count the command line sets (`keys`: the
    keys it sets) is kept."""
    cpus = usable_cpus()
    if "loader.num_workers" in keys:  # every loader's, set on the command line
        return None
    changes, was = [], []
    for loader in LOADERS:
        settings = mm_cfg.get(loader)
        workers = settings.get("num_workers") if settings else None
        if not isinstance(workers, int) or workers <= cpus or f"{loader}.num_workers" in keys:
            continue
        settings.num_workers = cpus
        changes.append(f"{loader}.num_workers={cpus}")
        was.append(str(workers))
    if not changes:
        return None
    return f"{' '.join(changes)} (was {', '.join(was)}; this machine gives the run {cpus} CPUs)"
