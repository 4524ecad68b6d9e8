"""Distributed training settings derived from where a run is launched."""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from mmengine.config import Config

PORT_BASE, PORT_SPAN = 20000, 20000


def apply_slurm_environment(mm_cfg: Config, env: MutableMapping[str, str] = os.environ) -> None:
    """Inside a SLURM job with one task per GPU, train with mmengine's slurm launcher.

    mmengine's default MASTER_PORT (29500) collides when two jobs share a node, so the port
    is derived from the job id unless the user set one.
    """
    if "SLURM_JOB_ID" not in env or int(env.get("SLURM_NTASKS", "1")) <= 1:
        return
    if mm_cfg.get("launcher", "none") == "none":
        mm_cfg.launcher = "slurm"
    env.setdefault("MASTER_PORT", str(PORT_BASE + int(env["SLURM_JOB_ID"]) % PORT_SPAN))


def launch_rank(env: MutableMapping[str, str] = os.environ) -> int:
    """This process's rank as its launcher set it (torchrun: RANK, SLURM: SLURM_PROCID), before
    torch.distributed is initialised; 0 for a single process."""
    return int(env.get("RANK", env.get("SLURM_PROCID", "0")))
