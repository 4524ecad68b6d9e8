"""`seglab test` and `seglab infer`: what mmseg's tools/test.py and demo/image_demo.py do, for
seglab's run directories.

    seglab test run_dir=DIR [checkpoint=PATH] [tta=true] [show_dir=PATH] [KEY=VALUE ...]
    seglab infer checkpoint=PATH image=PATH_OR_FOLDER out=DIR [device=cuda:0] [config=PATH]
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import yaml
from mmengine.config import Config
from mmengine.runner import Runner

from seglab import checkpoint_loading, hooks  # noqa: F401  (register the loader and the hooks)
from seglab.errors import ConfigError
from seglab.metrics import with_per_class_metrics

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def split_options(args: Sequence[str], options: Sequence[str]) -> tuple[dict, dict]:
    """`key=value` arguments: seglab's options, and config keys to change (YAML values)."""
    chosen, changes = {}, {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ConfigError(f"{arg}: expected KEY=VALUE")
        if key in options:
            chosen[key] = value
        else:
            changes[key] = yaml.safe_load(value)
    return chosen, changes


def last_checkpoint(run_dir: Path) -> Path:
    """The run's own last checkpoint (a copied run directory's, not its original's)."""
    from seglab.run_dirs import resume_checkpoint

    checkpoint, note = resume_checkpoint(run_dir)
    if checkpoint is None:
        raise ConfigError(
            f"run_dir={str(run_dir)!r} holds no checkpoint; "
            "expected a seglab run directory, or give checkpoint=PATH"
        )
    if note:
        print(
            f"seglab: {note}; testing {checkpoint.name}, the newest intact checkpoint", flush=True
        )
    return checkpoint


def config_of_run(
    run_dir: Path, checkpoint: Path | None, tta: bool, show_dir: str | None, changes: dict
) -> Config:
    """The run's exported config, set up to test `checkpoint` as tools/test.py does."""
    if not (run_dir / "config.py").is_file():
        raise ConfigError(
            f"run_dir={str(run_dir)!r} has no config.py; expected a seglab run directory"
        )
    # a Config without a file name: the Runner dumps it beside its logs, not over config.py
    cfg = Config(Config.fromfile(str(run_dir / "config.py")).to_dict(), format_python_code=False)
    cfg.merge_from_dict(changes)
    cfg.launcher = "none"  # one process, as tools/test.py without --launcher (a torchrun run too)
    cfg.work_dir = str(run_dir / "test")
    cfg.load_from = str(checkpoint or last_checkpoint(run_dir))
    cfg.test_evaluator = with_per_class_metrics(cfg.test_evaluator)
    if tta:  # multi-scale and flip, as tools/test.py --tta
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if show_dir:  # an overlay for every test image
        cfg.default_hooks.visualization.update(draw=True, interval=1)
        cfg.visualizer.save_dir = show_dir
    cfg.experiment_name = f"test:{run_dir.name}@{time.time_ns()}"
    cfg.visualizer.name = f"{cfg.experiment_name}:visualizer"
    return cfg


def evaluate_command(args: Sequence[str]) -> dict:
    from seglab.train import release_singletons

    options, changes = split_options(args, ("run_dir", "checkpoint", "tta", "show_dir"))
    if "run_dir" not in options:
        raise ConfigError("seglab test: expected run_dir=DIR (a seglab run directory)")
    run_dir = Path(options["run_dir"])
    tta = str(options.get("tta", "false")).lower() in ("true", "1", "yes")
    checkpoint = Path(options["checkpoint"]) if "checkpoint" in options else None
    if checkpoint is not None and not checkpoint.is_file():
        raise ConfigError(f"checkpoint={str(checkpoint)!r} is not a file")
    cfg = config_of_run(run_dir, checkpoint, tta, options.get("show_dir"), changes)
    try:
        metrics = Runner.from_cfg(cfg).test()
    finally:
        release_singletons(cfg)
    out = run_dir / ("test_metrics_tta.json" if tta else "test_metrics.json")
    record = {"checkpoint": cfg.load_from, **{k: hooks.json_value(v) for k, v in metrics.items()}}
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"test metrics: {', '.join(f'{k}={v}' for k, v in record.items())}\nwritten: {out}")
    return record


def infer_command(args: Sequence[str]) -> list[Path]:
    """Segments each image with mmseg's `MMSegInferencer` and writes its overlay as
    `out/STEM.png` (lossless, one per input image, as `seglab infer` always has). The inferencer
    builds the model as mmseg's tools do (SyncBN reverted on CPU, class names from the
    checkpoint); its own file layout (`out/vis/NAME.jpg` under the input's suffix, `out/pred/`
    numbered masks) is not used: the overlays are taken from it (`return_vis`) one image at a
    time, which also keeps a large folder out of memory."""
    import mmcv
    from mmseg.apis import MMSegInferencer

    options, changes = split_options(
        args, ("checkpoint", "image", "out", "device", "config", "opacity")
    )
    missing = [k for k in ("checkpoint", "image", "out") if k not in options]
    if missing or changes:
        raise ConfigError(
            f"seglab infer: expected checkpoint=PATH image=PATH out=DIR "
            f"[device=cpu] [config=PATH] (missing {missing or list(changes)})"
        )
    checkpoint, image = Path(options["checkpoint"]), Path(options["image"])
    config = Path(options.get("config") or checkpoint.parent / "config.py")
    for key, path in (("checkpoint", checkpoint), ("image", image), ("config", config)):
        if not path.exists():
            raise ConfigError(f"{key}={str(path)!r} does not exist")
    images = (
        sorted(p for p in image.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if image.is_dir()
        else [image]
    )
    inferencer = MMSegInferencer(str(config), str(checkpoint), device=options.get("device", "cpu"))
    inferencer.show_progress = False  # one image per call
    out = Path(options["out"])
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in images:
        result = inferencer(str(path), return_vis=True, opacity=float(options.get("opacity", 0.5)))
        target = out / f"{path.stem}.png"
        mmcv.imwrite(mmcv.rgb2bgr(result["visualization"]), str(target))
        written.append(target)
    print(f"segmented {len(written)} image(s) into {out}")
    return written
