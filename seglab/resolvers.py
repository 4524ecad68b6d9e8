"""OmegaConf resolvers the YAML groups use. Registered once, on import of this module."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import ListConfig, OmegaConf

from seglab.masking import hydra_masked, mask_overrides

_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]")


def as_tuple(*items: Any) -> tuple:
    """`${as_tuple:512,512}` or `${as_tuple:${dataset.crop_size}}` -> (512, 512).

    mmseg asserts tuples in places (RandomCrop.crop_size, Resize.scale) while OmegaConf only
    knows lists; a resolver's tuple survives `OmegaConf.to_container`.
    """
    if items == (None,):
        return None  # a data set without a crop size: no size where it would go
    if len(items) == 1 and isinstance(items[0], (list, tuple, ListConfig)):
        items = tuple(items[0])
    return tuple(OmegaConf.to_container(i) if isinstance(i, ListConfig) else i for i in items)


def length(items: Sequence) -> int:
    """`${len:${dataset.classes}}`: the class count follows the class names."""
    return len(items)


def cache_dir(name: str) -> str:
    """Where seglab keeps what it generates: $SEGLAB_CACHE, else ~/.cache/seglab."""
    root = os.environ.get("SEGLAB_CACHE") or os.path.join(Path.home(), ".cache", "seglab")
    return os.path.join(root, name)


def run_name(override_dirname: str) -> str:
    """A directory name that is a function of the job's overrides, not of the clock.

    Readable where it can be; characters a path must not hold, or a name too long, get a
    short hash of the full overrides so two different jobs never share a directory.
    """
    if not override_dirname:
        return "default"
    safe = _UNSAFE.sub("_", override_dirname)
    if safe != override_dirname or len(safe) > 96 or safe.startswith("."):
        digest = hashlib.sha1(override_dirname.encode()).hexdigest()[:8]
        safe = f"{safe[:80]}-{digest}"
    return safe


def run_dir(root: str, override_dirname: str, resume: Any) -> str:
    """The run directory of a single run: `root/run_name`, or `-2`, `-3`, ... when that one
    holds an earlier run; with `resume` the newest of them (run_dirs.choose_run_dir). The
    directory is claimed for this process as it is chosen."""
    from seglab.run_dirs import choose_run_dir

    return choose_run_dir(root, run_name(override_dirname), resume)


def sweep_job_name(job_overrides: Sequence[str]) -> str:
    """A sweep job's directory name: its overrides less those its whole sweep shares.

    The sweep directory is already named after the command line, and SEGLAB_SWEEP_FIXED holds
    the keys it sets to one value, so a job's name keeps what varies (`optim_wrapper.optimizer
    .lr=0.01`). Secret values are masked (conf/config.yaml passes the overrides unresolved).
    """
    fixed = {*json.loads(os.environ.get("SEGLAB_SWEEP_FIXED", "[]")), "resume"}
    own = sorted(o for o in job_overrides if o.split("=", 1)[0].lstrip("+~") not in fixed)
    own = mask_overrides(own)
    return run_name(",".join(own))


def register() -> None:
    for name, fn in {
        "as_tuple": as_tuple,
        "len": length,
        "cache_dir": cache_dir,
        "run_name": run_name,
        "run_dir": run_dir,
        "sweep_job_name": sweep_job_name,
        "hydra_masked": hydra_masked,
    }.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register()
