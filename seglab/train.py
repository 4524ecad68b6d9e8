"""The training task: a Hydra app that converts its config and trains with mmengine's Runner."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from mmengine.config import Config
from mmengine.dist import barrier
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from omegaconf import DictConfig, OmegaConf

from seglab import checkpoint_loading, hooks  # noqa: F401  (register the loader and the hooks)
from seglab.checks import check_before_training
from seglab.compose import CONF_DIR, CONFIG_NAME, compose_reference, only_group_choices
from seglab.convert import to_container, to_mm_config, write_config
from seglab.distributed import apply_slurm_environment, fit_cpu_processes, launch_rank
from seglab.errors import ConfigError
from seglab.hparam_search import current_trial
from seglab.metrics import with_per_class_metrics
from seglab.synthetic_data import ensure_synthetic_dataset
from seglab.wandb_logging import wandb_additions

EXPORTED_CONFIG = "config.py"


def prepare_run(cfg: DictConfig, run_dir: Path, choices: Mapping[str, str | None]) -> Config:
    """Everything before the first iteration: convert, generate data, check, export."""
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else None
    # with group options alone the config is its own reference: no second composition
    plain = overrides is not None and only_group_choices(overrides)
    mm_cfg = to_mm_config(cfg, reference=cfg if plain else compose_reference(choices))
    synthetic = cfg.get("dataset", {}).get("synthetic")
    if synthetic is not None:
        ensure_synthetic_dataset(cfg.dataset.data_root, **synthetic)
    check_before_training(mm_cfg)
    mm_cfg.work_dir = str(run_dir)
    if launch_rank() == 0:  # in a multi-process run, one process writes the run directory
        write_config(
            mm_cfg,
            run_dir / EXPORTED_CONFIG,
            header=(
                "Written by seglab; plain mmseg runs it as it is:\n"
                f"  python tools/train.py {run_dir / EXPORTED_CONFIG}\n"
                f"seglab overrides: {' '.join(overrides or []) or '(none)'}"
            ),
        )
    # seglab's additions to the Runner; the exported file stays pure mmseg
    for evaluator in ("val_evaluator", "test_evaluator"):
        if mm_cfg.get(evaluator):
            mm_cfg[evaluator] = with_per_class_metrics(mm_cfg[evaluator])
    mm_cfg.custom_hooks = [
        *(mm_cfg.get("custom_hooks") or []),
        dict(type="MetricsFileHook"),
        dict(type="NonFiniteLossHook"),
        dict(type="RandomStateHook"),
    ]
    if cfg.get("wandb"):
        hydra_cfg = HydraConfig.get()
        sweeping = hydra_cfg.mode == RunMode.MULTIRUN
        wandb_additions(
            mm_cfg,
            OmegaConf.to_container(cfg.wandb, resolve=True),
            hydra_config=to_container(cfg),
            overrides=list(hydra_cfg.overrides.task),
            run_dir=run_dir,
            choices=dict(choices),
            sweep=os.environ.get("SEGLAB_SWEEP") if sweeping else None,
        )
    trial = current_trial()
    if trial is not None:  # a job of seglab's Optuna sweeper
        mm_cfg.custom_hooks.append(dict(type="OptunaPruningHook", **trial))
    # Logger, message hub and scope are named after the experiment, and the visualizer has a
    # name of its own: all unique per run, so runs in one process (a sweep) share none of them.
    mm_cfg.experiment_name = f"{run_dir.name}@{time.time_ns()}"
    mm_cfg.visualizer.name = f"{mm_cfg.experiment_name}:visualizer"
    return mm_cfg


def build_runner(mm_cfg: Config) -> Runner:
    """As mmseg's tools/train.py does it."""
    if "runner_type" in mm_cfg:
        return RUNNERS.build(mm_cfg)
    return Runner.from_cfg(mm_cfg)


def train(
    cfg: DictConfig, run_dir: Path, choices: Mapping[str, str | None], sweeping: bool = False
) -> float:
    """Train one run; return its final validation mIoU (as mmseg reports it, in percent).

    In a sweep the run directory is a function of the job's overrides, so a sweep launched
    again finds its earlier jobs: a finished one is skipped, an interrupted one resumes from
    its last checkpoint.
    """
    if sweeping:
        finished = finished_metrics(run_dir, cfg.train_cfg.get("max_iters"))
        if finished is not None:
            print(f"seglab: {run_dir} finished earlier, skipped (mIoU={finished['mIoU']})")
            return float(finished["mIoU"])
    mm_cfg = prepare_run(cfg, run_dir, choices)
    if sweeping and (run_dir / "last_checkpoint").is_file():
        mm_cfg.resume = True
    apply_slurm_environment(mm_cfg)
    changes = fit_cpu_processes(mm_cfg)
    if changes and launch_rank() == 0:
        print(f"seglab: distributed on CPU processes: {', '.join(changes)}", flush=True)
    try:
        runner = build_runner(mm_cfg)
        runner.train()
        barrier()  # every rank reads the metrics rank 0 writes
    finally:
        release_singletons(mm_cfg)
    metrics = json.loads((run_dir / hooks.METRICS_FILE).read_text())
    if launch_rank() == 0:
        print(
            "final validation: "
            + ", ".join(f"{k}={v}" for k, v in metrics.items())
            + f"\nrun directory: {run_dir}",
            flush=True,
        )
    return float(metrics["mIoU"])


def finished_metrics(run_dir: Path, max_iters: int | None) -> dict | None:
    """The metrics of a run that validated at its last iteration, else None."""
    path = run_dir / hooks.METRICS_FILE
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    return metrics if metrics.get("iter") == max_iters else None


def release_singletons(mm_cfg: Config) -> None:
    """Drop this run's named mmengine instances (and close their files) once it has ended.

    The Runner names them after the experiment (adding its timestamp), the visualizer after
    its config; seglab starts both names with the run's unique experiment name.
    """
    from mmengine.logging import MessageHub, MMLogger
    from mmengine.registry import DefaultScope
    from mmengine.visualization import Visualizer

    for singleton in (Visualizer, MMLogger, MessageHub, DefaultScope):
        ours = [n for n in singleton._instance_dict if n.startswith(mm_cfg.experiment_name)]
        for name in ours:
            instance = singleton._instance_dict.pop(name)
            if isinstance(instance, Visualizer):
                instance.close()
            for handler in getattr(instance, "handlers", []):
                handler.close()


@hydra.main(config_path=str(CONF_DIR), config_name=CONFIG_NAME, version_base="1.3")
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        return train(cfg, run_dir, hydra_cfg.runtime.choices, sweeping)
    except ConfigError as err:
        if sweeping:
            raise  # a failed job: the sweeper lists it and goes on
        print(f"seglab: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
