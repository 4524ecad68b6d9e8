"""Weights & Biases for mmseg runs, done the way a segmentation user compares runs.

mmengine's WandbVisBackend logs against wandb's own step counter, uploads every *.py under the
working directory and never sees per-class IoU. seglab's backend (added to the Runner's
visualizer when `logger=wandb`; the exported config stays pure mmseg):
- logs every train and validation metric against the training iteration (`iter`), validation
  metrics at the iteration they were measured, and keeps the best `val/mIoU` in the summary;
- logs per-class IoU and accuracy as metrics and as a table with the class names, and a few
  validation predictions as images with their prediction and ground-truth masks;
- logs the composed Hydra config, the overrides and the project's git commit, no code, no
  value whose key looks like a secret, no `${oc.env:...}` value, nothing that interpolates one
  of those and no URL credential (see seglab/masking.py; the overrides, the run's name and the
  command line wandb records are masked the same way);
- runs offline into the run directory when there is no API key, and falls back to offline
  when wandb cannot start online, so a missing network never stops training;
- names the wandb run after the run directory, so a resumed run continues the same wandb run.
What it logs and how it is masked is shared with MLflow and TensorBoard (seglab/run/tracking.py).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from mmengine.hooks import Hook
from mmengine.visualization.vis_backend import WandbVisBackend, force_init_env

from seglab.masking import masked_argv
from seglab.run.tracking import (  # noqa: F401  (without_secrets: seglab's API here too)
    TrackedRun,
    group_choices,
    per_class,
    run_id,
    tracked_config,
    without_secrets,
)


def wandb_mode(requested: str | None = None) -> str:
    """`requested`, else WANDB_MODE, else online only where an API key is configured."""
    if requested:
        return requested
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    netrc = Path.home() / ".netrc"
    has_key = bool(os.environ.get("WANDB_API_KEY")) or (
        netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")
    )
    return "online" if has_key else "offline"


# every metric against the training iteration; the best validation mIoU in the summary
STEP_METRICS = (
    {"name": "iter"},
    {"name": "*", "step_metric": "iter"},
    {"name": "val/mIoU", "step_metric": "iter", "summary": "max"},
)


class SeglabWandbVisBackend(WandbVisBackend):
    """mmengine's backend, started offline where it must be and logging against `iter`.

    mmengine's `_init_env` makes the directory, calls `wandb.init(**init_kwargs)` and applies
    `define_metric_cfg`; seglab adds the mode, the settings and the masked command line before
    it, and a second, offline start when the online one fails.
    """

    def __init__(self, save_dir: str, define_metric_cfg=None, **kwargs: Any) -> None:
        if define_metric_cfg is None:
            define_metric_cfg = [dict(metric) for metric in STEP_METRICS]
        super().__init__(save_dir, define_metric_cfg=define_metric_cfg, **kwargs)

    def _init_env(self) -> None:
        import wandb

        kwargs = {"dir": self._save_dir, **(self._init_kwargs or {})}
        kwargs["mode"] = wandb_mode(kwargs.get("mode"))
        kwargs.setdefault("save_code", False)
        # WANDB_INIT_TIMEOUT, when set, bounds how long an unreachable server can delay a run
        timeout = float(os.environ.get("WANDB_INIT_TIMEOUT", 60))
        kwargs["settings"] = wandb.Settings(init_timeout=timeout, console="off")
        self._init_kwargs = kwargs
        # wandb records sys.argv as the run's command line when it starts
        with masked_argv():
            try:
                super()._init_env()
            except Exception as err:  # never let the network stop a training run
                if kwargs["mode"] == "offline" or wandb.run is not None:  # not the network
                    raise
                warnings.warn(
                    f"wandb could not start online ({err}); logging offline", stacklevel=2
                )
                wandb.teardown()  # the failed attempt still holds the run id in wandb's service
                self._init_kwargs = {**kwargs, "mode": "offline"}
                super()._init_env()

    @force_init_env
    def add_config(self, config, **kwargs: Any) -> None:
        """The composed Hydra config went to wandb.init; mmengine's would upload code."""

    @force_init_env
    def add_scalar(self, name: str, value, step: int = 0, **kwargs: Any) -> None:
        self._wandb.log({name: value, "iter": step})

    @force_init_env
    def add_scalars(self, scalar_dict: dict, step: int = 0, file_path=None, **kwargs: Any) -> None:
        row: dict[str, Any] = {**scalar_dict, "iter": step}
        classes = per_class(scalar_dict)
        if classes:
            row["val/per_class"] = self._wandb.Table(
                columns=["class", "IoU", "Acc"],
                data=[[c, v.get("IoU"), v.get("Acc")] for c, v in classes.items()],
            )
        self._wandb.log(row)

    @force_init_env
    def add_image(self, name: str, image, step: int = 0, **kwargs: Any) -> None:
        self._wandb.log({name: self._wandb.Image(image), "iter": step})


class WandbPredictionsHook(Hook):
    """Logs the first `num_images` validation predictions with their masks and class names."""

    priority = "LOW"

    def __init__(self, num_images: int = 4) -> None:
        self.num_images = num_images
        self._images: list = []

    def before_val_epoch(self, runner) -> None:
        self._images = []

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if len(self._images) >= self.num_images or not outputs:
            return
        import mmcv
        import wandb

        classes = runner.val_dataloader.dataset.metainfo["classes"]
        labels = {i: name for i, name in enumerate(classes)} | {255: "ignored"}
        for sample in outputs[: self.num_images - len(self._images)]:
            image = mmcv.imread(sample.img_path, channel_order="rgb")
            masks = {
                "prediction": {
                    "mask_data": sample.pred_sem_seg.data[0].cpu().numpy(),
                    "class_labels": labels,
                }
            }
            if "gt_sem_seg" in sample:
                masks["ground_truth"] = {
                    "mask_data": sample.gt_sem_seg.data[0].cpu().numpy(),
                    "class_labels": labels,
                }
            self._images.append(
                wandb.Image(image, masks=masks, caption=os.path.basename(sample.img_path))
            )

    def after_val_epoch(self, runner, metrics=None) -> None:
        import wandb

        if self._images and wandb.run is not None:
            wandb.log({"val/predictions": self._images, "iter": runner.iter})


def wandb_additions(mm_cfg, wandb_cfg: dict, run: TrackedRun) -> None:
    """Turn wandb on for this Runner: the backend and the images hook."""
    tags = [*wandb_cfg.get("tags", [])] + [
        f"{group}:{option}" for group, option in group_choices(run.choices).items()
    ]
    init_kwargs = {
        "project": wandb_cfg.get("project"),
        "entity": wandb_cfg.get("entity"),
        "mode": wandb_cfg.get("mode"),
        "save_code": bool(wandb_cfg.get("save_code", False)),
        "id": run_id(run.run_dir),
        "resume": "allow",
        "name": run.run_dir.name,
        "group": run.sweep,
        "tags": tags,
        "config": tracked_config(run.hydra_config, run.overrides),
    }
    mm_cfg.visualizer.vis_backends = [
        *mm_cfg.visualizer.get("vis_backends", []),
        dict(type="SeglabWandbVisBackend", init_kwargs=init_kwargs),
    ]
    if wandb_cfg.get("log_images"):
        mm_cfg.custom_hooks.append(
            dict(type="WandbPredictionsHook", num_images=int(wandb_cfg["log_images"]))
        )
