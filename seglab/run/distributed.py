"""Distributed training settings derived from where a run is launched (torchrun, SLURM)."""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from datetime import timedelta
from typing import Any

from hydra.experimental.callback import Callback
from mmengine.config import Config
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from seglab.checks.requirements import torchrun_world_size
from seglab.errors import exit_with_error
from seglab.tree import nodes

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


def launch_rank(env: Mapping[str, str] = os.environ) -> int:
    """This process's rank as its launcher set it (torchrun: RANK, SLURM: SLURM_PROCID), before
    torch.distributed is initialised; 0 for a single process."""
    return int(env.get("RANK", env.get("SLURM_PROCID", "0")))


def start_process_group(dist_cfg: Mapping[str, Any], env: Mapping[str, str] = os.environ) -> None:
    """Join torchrun's process group as mmengine's `launcher=pytorch` would.

    Done here rather than by the Runner because mmengine's init always selects a CUDA device,
    which fails on a machine without one; there NCCL is replaced by gloo. The Runner sees the
    group initialised and uses it.
    """
    import torch
    import torch.distributed as dist

    backend = dist_cfg.get("backend", "nccl")
    if torch.cuda.is_available():
        torch.cuda.set_device(int(env["LOCAL_RANK"]))
    elif backend == "nccl":
        backend = "gloo"
    if not dist.is_initialized():
        timeout = dist_cfg.get("timeout")
        extra = {} if timeout is None else {"timeout": timedelta(seconds=timeout)}
        dist.init_process_group(backend=backend, **extra)


class TorchrunCallback(Callback):
    """Under `torchrun --nproc_per_node=N -m seglab ...`: one run, one run directory.

    Every rank composes the config and would pick a run directory of its own (`-2`, `-3`: the
    first rank's already exists). Before Hydra creates it, rank 0 picks it and tells the
    others, and only rank 0 writes Hydra's `.hydra/` files; mmengine has only rank 0 write
    logs and checkpoints. `launcher` becomes `pytorch` when torchrun started several processes.
    """

    def __init__(self) -> None:
        self._started = False

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        world_size = torchrun_world_size()
        if not world_size:
            return
        import torch.distributed as dist

        with read_write(config), open_dict(config):
            if config.get("launcher", "none") == "none" and world_size > 1:
                config.launcher = "pytorch"
        if config.launcher != "pytorch":
            return
        dist_cfg = OmegaConf.to_container(config.env_cfg.get("dist_cfg", {}), resolve=True)
        self._started = not dist.is_initialized()
        start_process_group(dist_cfg)
        choice = [_resolve_run_dir(config) if dist.get_rank() == 0 else None]
        dist.broadcast_object_list(choice, src=0)
        run_dir, error = choice[0]
        if error:  # Hydra only warns about a callback's exception: every rank stops here
            exit_with_error(f"hydra.run.dir: {error}")
        # on the hydra node itself: HydraConfig.set_config (rank 0, above) flags it read-only,
        # and that flag outranks one set on the root
        with read_write(config.hydra), open_dict(config.hydra):
            config.hydra.run.dir = run_dir
            if dist.get_rank() > 0:
                config.hydra.output_subdir = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if torchrun_world_size() > 1:  # every rank would run the whole sweep
            exit_with_error(
                "-m under torchrun: expected one run per torchrun; sweep with "
                "hydra/launcher=slurm (tasks_per_node = GPUs per job) or run torchrun per job"
            )

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        import torch.distributed as dist

        if self._started and dist.is_initialized():
            dist.destroy_process_group()


def _resolve_run_dir(config: DictConfig) -> tuple[str | None, str | None]:
    """(run directory, None), or (None, why not); `${hydra:...}` needs HydraConfig set."""
    from hydra.core.hydra_config import HydraConfig

    try:
        HydraConfig.instance().set_config(config)
        return str(OmegaConf.select(config, "hydra.run.dir")), None
    except Exception as err:  # noqa: BLE001  (sent to the other ranks, then raised)
        return None, f"{type(err).__name__}: {err}"


def fit_cpu_processes(mm_cfg: Config) -> list[str]:
    """Distributed training on CPU processes (gloo), e.g. to try `launcher=pytorch` on a laptop.

    mmengine wraps the model for one CUDA device per process, and torch's SyncBN needs a GPU:
    without one the wrapper gets no device and SyncBN becomes BN (statistics per process).
    Returns what was changed, for the log.
    """
    import torch

    if mm_cfg.get("launcher", "none") == "none" or torch.cuda.is_available():
        return []
    changes = []
    if mm_cfg.get("model_wrapper_cfg") is None:
        mm_cfg.model_wrapper_cfg = dict(
            type="MMDistributedDataParallel",
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=mm_cfg.get("find_unused_parameters", False),
        )
        changes.append("model_wrapper_cfg.device_ids=None")
    if _replace_sync_bn(mm_cfg.model):
        changes.append("SyncBN -> BN")
    return changes


def _replace_sync_bn(tree: Any) -> bool:
    replaced = False
    for _, node in nodes(tree):
        if isinstance(node, dict) and node.get("type") == "SyncBN":
            node["type"] = "BN"
            replaced = True
    return replaced
