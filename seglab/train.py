"""The training task: a Hydra app that converts its config and trains with mmengine's Runner."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from omegaconf import DictConfig

from seglab import checkpoint_loading, hooks  # noqa: F401  (register the loader and the hooks)
from seglab.checks import check_before_training
from seglab.compose import CONF_DIR, CONFIG_NAME, compose_reference
from seglab.convert import to_mm_config, write_config
from seglab.errors import ConfigError
from seglab.synthetic_data import ensure_synthetic_dataset

EXPORTED_CONFIG = "config.py"


def prepare_run(cfg: DictConfig, run_dir: Path, choices: Mapping[str, str | None]) -> Config:
    """Everything before the first iteration: convert, generate data, check, export."""
    mm_cfg = to_mm_config(cfg, reference=compose_reference(choices))
    synthetic = cfg.get("dataset", {}).get("synthetic")
    if synthetic is not None:
        ensure_synthetic_dataset(cfg.dataset.data_root, **synthetic)
    check_before_training(mm_cfg)
    mm_cfg.work_dir = str(run_dir)
    # The visualizer is a named mmengine singleton: a name per run keeps runs apart.
    mm_cfg.visualizer.name = f"visualizer:{run_dir.resolve()}"
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    write_config(
        mm_cfg,
        run_dir / EXPORTED_CONFIG,
        header=(
            "Written by seglab; plain mmseg runs it as it is:\n"
            f"  python tools/train.py {run_dir / EXPORTED_CONFIG}\n"
            f"seglab overrides: {' '.join(overrides) or '(none)'}"
        ),
    )
    # metrics.json is seglab's; the exported file stays pure mmseg
    mm_cfg.custom_hooks = [*(mm_cfg.get("custom_hooks") or []), dict(type="MetricsFileHook")]
    return mm_cfg


def build_runner(mm_cfg: Config) -> Runner:
    """As mmseg's tools/train.py does it."""
    if "runner_type" in mm_cfg:
        return RUNNERS.build(mm_cfg)
    return Runner.from_cfg(mm_cfg)


def train(cfg: DictConfig, run_dir: Path, choices: Mapping[str, str | None]) -> float:
    """Train one run; return its final validation mIoU (as mmseg reports it, in percent)."""
    mm_cfg = prepare_run(cfg, run_dir, choices)
    runner = build_runner(mm_cfg)
    runner.train()
    metrics_path = run_dir / hooks.METRICS_FILE
    metrics = json.loads(metrics_path.read_text())
    runner.logger.info(
        "final validation: "
        + ", ".join(f"{k}={v}" for k, v in metrics.items())
        + f"\nrun directory: {run_dir}"
    )
    return float(metrics["mIoU"])


@hydra.main(config_path=str(CONF_DIR), config_name=CONFIG_NAME, version_base="1.3")
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    try:
        return train(cfg, Path(hydra_cfg.runtime.output_dir), hydra_cfg.runtime.choices)
    except ConfigError as err:
        print(f"seglab: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
