"""What the Runner gets beyond the exported config.py, added in one place.

The exported file is pure mmseg: `python tools/train.py config.py` trains the same model on the
same data. The Runner seglab builds also gets, in this order:
- per-class IoU and accuracy from the evaluators (PerClassIoUMetric for mmseg's IoUMetric);
- seglab's hooks: metrics.json, a non-finite loss stopped, the config in every checkpoint, the
  random state saved and restored, a checkpoint on SIGTERM (seglab/run/hooks.py, preemption.py);
- mmengine's EpochBasedTrainLoop as one that resumes within an epoch where it stopped
  (preemption.MidEpochResumingLoop);
- the runtime speed switches: channels_last's hook, mmengine's `compile`;
- loading transforms that name a file that cannot be used (seglab/run/data_loading.py);
- resuming from the run's own checkpoint (before the trackers: TensorBoard's purges the
  events that followed it);
- the experiment trackers' backends: wandb's (with prediction images), MLflow's, TensorBoard's
  (`logger=wandb`, `mlflow`, `tensorboard`, or several: `logger=[wandb,tensorboard]`);
- an Optuna trial's lease and pruning hook (a job of seglab's Optuna sweeper);
- names unique to the run (its logger, message hub and visualizer: runs of one sweep in one
  process share none);
- the launcher a SLURM job or CPU processes need.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmengine.config import Config

from seglab.run.data_loading import check_files_as_they_load
from seglab.run.distributed import apply_slurm_environment, fit_cpu_processes
from seglab.run.hparam_search import current_trial
from seglab.run.metrics import with_per_class_metrics
from seglab.run.mlflow_logging import mlflow_additions
from seglab.run.tensorboard_logging import tensorboard_additions
from seglab.run.tracking import TrackedRun
from seglab.run.wandb_logging import wandb_additions

ADDED_HOOKS = (
    "MetricsFileHook",
    "NonFiniteLossHook",
    "RandomStateHook",
    "CheckpointConfigHook",
    "PreemptionHook",
)
# what each tracker adds to the Runner's config: (mm_cfg, its config node, the TrackedRun)
TRACKER_ADDITIONS = {
    "wandb": wandb_additions,
    "mlflow": mlflow_additions,
    "tensorboard": tensorboard_additions,
}


def add_runner_only(
    mm_cfg: Config,
    switches: Mapping[str, Any],
    run_dir: Path,
    checkpoint: Path | None,
    tracking: TrackedRun | None = None,
) -> list[str]:
    """Add to `mm_cfg` (the exported config) everything listed in the module docstring.

    `switches`: the composed config's `channels_last`, `compile` and `compile_mode`;
    `tracking`: what the trackers the run turns on take beyond the config (None: no tracker);
    `checkpoint`: the run's own checkpoint to resume from, or None. Returns the launcher
    changes, for the log.
    """
    for evaluator in ("val_evaluator", "test_evaluator"):
        if mm_cfg.get(evaluator):
            mm_cfg[evaluator] = with_per_class_metrics(mm_cfg[evaluator])
    hooks = [dict(type=name) for name in ADDED_HOOKS]
    if switches.get("channels_last"):
        hooks.append(dict(type="ChannelsLastHook"))
    mm_cfg.custom_hooks = [*(mm_cfg.get("custom_hooks") or []), *hooks]
    train_cfg = mm_cfg.get("train_cfg") or {}
    if train_cfg.get("type") in ("EpochBasedTrainLoop", "mmengine.EpochBasedTrainLoop"):
        train_cfg["type"] = "MidEpochResumingLoop"
    if switches.get("compile"):
        # mmengine's own setting: the Runner compiles train_step once the model is wrapped
        mm_cfg.compile = dict(backend="inductor", mode=switches.get("compile_mode", "default"))
    check_files_as_they_load(mm_cfg)  # a file that fails to load is named in one line
    # resume from the run's own checkpoint (mmengine resumes from load_from when it is set)
    mm_cfg.resume = checkpoint is not None
    if checkpoint is not None:
        mm_cfg.load_from = str(checkpoint)
    if tracking is not None and tracking.settings:
        # train/... and val/... names (mmengine's own option), as trackers' users expect
        mm_cfg.log_processor = {**mm_cfg.get("log_processor", {}), "log_with_hierarchy": True}
        for name, settings in tracking.settings.items():
            TRACKER_ADDITIONS[name](mm_cfg, settings, tracking)
    trial = current_trial()
    if trial is not None:  # a job of seglab's Optuna sweeper
        mm_cfg.custom_hooks.append(dict(type="OptunaTrialHook", **trial))
    # Logger, message hub and scope are named after the experiment, and the visualizer has a
    # name of its own: all unique per run, so runs in one process (a sweep) share none of them.
    mm_cfg.experiment_name = f"{run_dir.name}@{time.time_ns()}"
    mm_cfg.visualizer.name = f"{mm_cfg.experiment_name}:visualizer"
    apply_slurm_environment(mm_cfg)
    return fit_cpu_processes(mm_cfg)
