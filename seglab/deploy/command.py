"""`seglab deploy RUN_DIR ...` and `seglab infer model=DIR/model.onnx ...`.

    seglab deploy RUN_DIR [checkpoint=PATH] [format=onnx] [out=DIR] [images=PATH]
                  [tolerance=0.001] [agreement=0.999]
    seglab infer model=DIR/model.onnx image=PATH out=DIR [preprocess=PATH] [device=cpu|cuda]

deploy writes OUT/model.onnx and OUT/preprocess.json (OUT defaults to RUN_DIR/deploy) only once
the graph has segmented sample images as the PyTorch model does (parity.py); until then, and
for good where it does not, they are `model.onnx.partial` and `preprocess.json.partial`.
Everything a user can get wrong is one line before the model is built; like `seglab infer`,
neither command writes over a file seglab did not write.
"""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seglab.deploy.parity import AGREEMENT, TOLERANCE
from seglab.deploy.preprocess import MODEL_FILE, PARTIAL, PREPROCESS_FILE
from seglab.errors import ConfigError
from seglab.evaluate import (
    LABELS_SUFFIX,
    WrittenFiles,
    check_out,
    check_writable,
    images_to_segment,
    label_map,
    last_checkpoint,
    opacity_option,
    output_names,
    split_options,
)
from seglab.run_dirs.files import CONFIG_FILE, DEPLOY_DIR

DEPLOY_OPTIONS = ("checkpoint", "format", "out", "images", "tolerance", "agreement")
DEPLOY_USAGE = (
    "expected seglab deploy RUN_DIR [checkpoint=PATH] [format=onnx] [out=DIR] [images=PATH] "
    f"[tolerance={TOLERANCE:g}] [agreement={AGREEMENT:g}]"
)
INFER_OPTIONS = ("model", "preprocess", "image", "out", "device", "opacity")
INFER_USAGE = (
    "expected model=DIR/model.onnx (or DIR) image=PATH_OR_FOLDER out=DIR [preprocess=PATH] "
    "[device=cpu|cuda|cuda:N] [opacity=0.5]"
)


def _options(args: Sequence[str], allowed: Sequence[str], usage: str) -> tuple[list, dict]:
    """Positional words, and the options (a key not among them is one line naming the
    closest). Run directories are named with `=` (`experiment=demo,lr=0.002-1a2b3c4d`): a
    word that is a directory, or whose part before `=` is no key, is positional."""
    words, pairs = [], []
    for arg in args:
        key = arg.partition("=")[0]
        keyish = "=" in arg and re.fullmatch(r"[A-Za-z_][\w.]*", key)
        if not keyish or (key not in allowed and Path(arg).is_dir()):
            words.append(arg)
        else:
            pairs.append(arg)
    options, unknown = split_options(pairs, allowed)
    for key, value in unknown.items():
        near = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean {near[0]}?" if near else usage
        raise ConfigError(f"{key}={value}: no option {key}; {hint}")
    return words, options


def _share(key: str, value: str, default: float) -> float:
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 < number <= 1:
        raise ConfigError(
            f"{key}={value}: expected a number above 0, at most 1 (default {default:g})"
        )
    return number


def _sample_images(value: str) -> list[Path]:
    """`images=`: an image or a folder of them, checked as `seglab infer`'s `image=` is."""
    try:
        return images_to_segment(Path(value))
    except ConfigError as err:  # its line names infer's key
        raise ConfigError(str(err).replace("image=", "images=", 1)) from None


def deploy_command(args: Sequence[str]) -> Path:
    from seglab.run.console import quiet_console

    # run_dir= as `seglab test` takes it, or the first word
    words, options = _options(args, (*DEPLOY_OPTIONS, "run_dir"), DEPLOY_USAGE)
    if "run_dir" in options:
        words.append(options.pop("run_dir"))
    if len(words) != 1:
        raise ConfigError(f"seglab deploy: {DEPLOY_USAGE} (got {len(words)} run directories)")
    run_dir = Path(words[0])
    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigError(
            f"run_dir={str(run_dir)!r} has no config.py; expected a seglab run directory"
        )
    form = options.get("format", "onnx")
    if form != "onnx":
        raise ConfigError(
            f"format={form}: expected onnx, the one format seglab deploy writes (TensorRT and "
            "OpenVINO read model.onnx with their own tools)"
        )
    tolerance = _share("tolerance", options.get("tolerance"), TOLERANCE)
    agreement = _share("agreement", options.get("agreement"), AGREEMENT)
    images = _sample_images(options["images"]) if "images" in options else None
    checkpoint = Path(options["checkpoint"]) if "checkpoint" in options else None
    if checkpoint is not None and not checkpoint.is_file():
        raise ConfigError(f"checkpoint={str(checkpoint)!r} is not a file")
    checkpoint = checkpoint or last_checkpoint(run_dir)
    out = Path(options.get("out") or run_dir / DEPLOY_DIR)
    names = [MODEL_FILE, PREPROCESS_FILE]
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out={str(out)!r}: is a file; expected a folder (or a new one)")
    record = WrittenFiles(out)
    record.refuse_replacing([*names, *(n + PARTIAL for n in names)], "out", str(out))
    check_writable(out, "out")
    with quiet_console():
        from seglab.deploy.deployment import Deployment

        started = time.monotonic()
        deployment = Deployment(run_dir, checkpoint, out, record)
        deployment.export(images, tolerance, agreement)
    print(f"took {time.monotonic() - started:.1f} s")
    return out / MODEL_FILE


def infer_onnx_command(args: Sequence[str]) -> list[Path]:
    """`seglab infer` of an exported model: the same files as of a checkpoint (evaluate.py's
    names, checks and overlay), the network run by ONNX Runtime."""
    import mmcv

    from seglab.deploy.onnx_runtime import OnnxSegmenter
    from seglab.deploy.preprocess import load_preprocess
    from seglab.drawings import overlay

    words, options = _options(args, INFER_OPTIONS, INFER_USAGE)
    if words:
        raise ConfigError(f"{words[0]}: expected KEY=VALUE ({INFER_USAGE})")
    missing = [k for k in ("model", "image", "out") if k not in options]
    if missing:
        raise ConfigError(f"seglab infer: {INFER_USAGE} (missing {', '.join(missing)})")
    model, image = Path(options["model"]), Path(options["image"])
    if model.is_dir():  # the folder seglab deploy wrote into
        model = model / MODEL_FILE
    preprocess = Path(options.get("preprocess") or model.parent / PREPROCESS_FILE)
    for key, path in (("model", model), ("preprocess", preprocess), ("image", image)):
        if not path.is_file() and not (key == "image" and path.is_dir()):
            raise ConfigError(f"{key}={str(path)!r} does not exist or is not a file")
    opacity = opacity_option(options.get("opacity", "0.5"))
    images = images_to_segment(image)
    names = output_names(images)
    out = Path(options["out"])
    record = check_out(out, image, names)
    pre = load_preprocess(preprocess)
    segmenter = OnnxSegmenter(model, pre, options.get("device", "cpu"))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path, (drawn, labels) in zip(images, names, strict=True):
        photo = mmcv.imread(str(path))  # BGR, as mmseg's loader reads it
        prediction = segmenter.predict(photo)
        rgb = np.ascontiguousarray(photo[..., ::-1])
        mmcv.imwrite(mmcv.rgb2bgr(overlay(rgb, prediction, pre.meta, opacity)), str(out / drawn))
        record.record(drawn)
        mmcv.imwrite(label_map(prediction, pre.num_classes), str(out / labels))
        record.record(labels)
        written.append(out / drawn)
    print(
        f"segmented {len(written)} image(s) with {model.name} (ONNX Runtime) into {out}/: "
        f"STEM.png (overlay) and STEM{LABELS_SUFFIX} (class index per pixel, "
        f"{pre.num_classes} classes)"
    )
    return written
