"""`seglab test` and `seglab infer`: what mmseg's tools/test.py and demo/image_demo.py do, for
seglab's run directories.

    seglab test run_dir=DIR [checkpoint=PATH] [tta=true] [show_dir=PATH] [KEY=VALUE ...]
    seglab infer checkpoint=PATH image=PATH_OR_FOLDER out=DIR [device=cpu] [config=PATH]

Neither writes over its inputs or over a file it did not write: an `out=` that is the folder of
the images to segment, or a `show_dir=` in (or at) a folder or data root that the run's
training, validation or test set reads, is refused, and so is an output file that exists unless
seglab wrote it there (`WrittenFiles`: the name and SHA-1 of every file written into a folder,
kept in seglab's cache), before the checkpoint is loaded. Running a command again therefore
replaces its own earlier outputs, as they were left. An output folder that cannot be made or
written (a read-only or full file system) is one line before the model is built
(`check_writable`).
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from mmengine.config import Config
from mmengine.registry import HOOKS
from mmengine.runner import Runner
from mmseg.engine.hooks import SegVisualizationHook

from seglab.drawings import CAPTIONS, captioned, overlay
from seglab.errors import ConfigError, os_reason
from seglab.overrides import override_key
from seglab.run.console import SeglabRunner
from seglab.run.data_loading import check_files_as_they_load
from seglab.run.hooks import json_value
from seglab.run.metrics import with_per_class_metrics
from seglab.run.registry import register_class, register_with_mmengine
from seglab.run_dirs.files import CONFIG_FILE, TEST_DIR, TEST_METRICS_FILE, TEST_METRICS_TTA_FILE

# what OpenCV (mmcv's image backend) reads
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
TEST_OPTIONS = ("run_dir", "checkpoint", "tta", "show_dir")
INFER_OPTIONS = ("checkpoint", "image", "out", "device", "config", "opacity")
INFER_USAGE = (
    "expected checkpoint=PATH image=PATH_OR_FOLDER out=DIR "
    "[device=cpu|cuda|cuda:N] [config=PATH] [opacity=0.5]"
)
LABELS_SUFFIX = "_labels.png"
# what seglab wrote into each output folder, kept in its cache (WrittenFiles)
WRITTEN_RECORDS = "written"


def split_options(args: Sequence[str], options: Sequence[str]) -> tuple[dict, dict]:
    """`key=value` arguments: seglab's options, and config keys to change (YAML values; a
    leading `+` adds a key the config lacks, as in Hydra)."""
    chosen, changes = {}, {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ConfigError(f"{arg}: expected KEY=VALUE")
        if key in options:
            chosen[key] = value
            continue
        try:
            changes[key] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or "not a YAML value"
            raise ConfigError(f"{arg}: {problem}; quote a value holding [ ] {{ }} : or ,") from None
    return chosen, changes


def _closest(word: str, candidates: Sequence[str]) -> str:
    near = difflib.get_close_matches(word, [str(c) for c in candidates], n=3)
    return f"did you mean {', '.join(near)}?" if near else ""


def check_changes(cfg: Mapping, changes: Mapping[str, Any]) -> None:
    """Each `KEY=VALUE` names a key the run's config has (mmengine's merge would add a typo as a
    new key, and the class it reaches would fail with a traceback after the model is built);
    `+KEY=VALUE` adds one on purpose (a key such as `model.test_cfg.stride` for slide mode)."""
    for key, value in changes.items():
        if key.startswith("+"):
            continue
        node: Any = cfg
        parts = key.split(".")
        for depth, part in enumerate(parts):
            parent = ".".join(parts[:depth])
            if isinstance(node, list | tuple) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            elif isinstance(node, Mapping) and part in node:
                node = node[part]
            else:
                raise _missing_key(key, value, part, parent, node)


def _missing_key(key: str, value: Any, part: str, parent: str, node: Any) -> ConfigError:
    """`KEY=VALUE: no key PART under PARENT; did you mean NEAR?`, in compose's wording."""
    arg = f"{key}={value}"
    if not isinstance(node, Mapping):
        kind = f"a list of {len(node)}" if isinstance(node, list | tuple) else repr(node)
        return ConfigError(f"{arg}: {parent} is {kind}, it has no {part}")
    where = f"under {parent}" if parent else "in the run's config"
    siblings = list(node) + (list(TEST_OPTIONS) if not parent else [])
    hint = _closest(part, siblings) or f"+{arg} adds it, if a class reads it"
    return ConfigError(f"{arg}: no key {part} {where}; {hint}")


def true_or_false(key: str, value: str) -> bool:
    """A yes/no option (as seglab has read it: true, yes, 1), anything else refused rather
    than read as false."""
    word = value.strip().lower()
    if word not in ("true", "yes", "1", "false", "no", "0"):
        raise ConfigError(f"{key}={value}: expected true or false")
    return word in ("true", "yes", "1")


def last_checkpoint(run_dir: Path, key: str = "run_dir") -> Path:
    """The run's own last checkpoint (a copied run directory's, not its original's); `key` is
    the option that named the run directory."""
    from seglab.run_dirs.resume import resume_checkpoint

    checkpoint, note = resume_checkpoint(run_dir)
    if checkpoint is None:
        raise ConfigError(
            f"{key}={str(run_dir)!r} holds no checkpoint; "
            "expected a seglab run directory, or give checkpoint=PATH"
        )
    if note:
        print(f"seglab: {note}; using {checkpoint.name}, the newest intact checkpoint", flush=True)
    return checkpoint


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


class WrittenFiles:
    """The files seglab wrote into an output folder, by name and SHA-1: one JSON line
    `{"name": NAME, "sha1": DIGEST}` per file written (the last line of a name counts) in
    `written/HASH.jsonl` under seglab's cache ($SEGLAB_CACHE, else ~/.cache/seglab), HASH
    that of the folder's absolute path; outside the folder, which holds the outputs only.

    An existing file may be replaced only when it is one of these, still as seglab left it
    (a regular file with the recorded SHA-1): the user's own files, a file of seglab's that
    was edited since, a link, or the files of a folder moved or copied from elsewhere are
    refused. The record is appended to as each file is written, so an interrupted command
    keeps it."""

    def __init__(self, folder: Path) -> None:
        from seglab.config.resolvers import cache_dir

        self.folder = folder
        where = str(folder.resolve())
        key = hashlib.sha1(where.encode()).hexdigest()[:20]
        self.path = Path(cache_dir(WRITTEN_RECORDS), f"{key}.jsonl")
        self.digests: dict[str, str] = {}
        self._compacted = False
        try:
            lines = self.path.read_text().splitlines()
        except (OSError, UnicodeDecodeError):  # none yet, or not a record: nothing is ours
            lines = []
        for line in lines:
            try:
                entry = json.loads(line)
                if entry.get("folder", where) == where:
                    self.digests[str(entry["name"])] = str(entry["sha1"])
            except (ValueError, KeyError, TypeError, AttributeError):
                continue

    def ours(self, name: str) -> bool:
        path = self.folder / name
        if path.is_symlink() or not path.is_file() or name not in self.digests:
            return False
        return _sha1(path) == self.digests[name]

    def refuse_replacing(self, names: Sequence[str], key: str, value: str) -> None:
        """One line for the first of `names` that exists and is not seglab's own."""
        for name in names:
            path = self.folder / name
            if (path.exists() or path.is_symlink()) and not self.ours(name):
                raise ConfigError(
                    f"{key}={value!r}: {path} exists and seglab did not write it (or it changed "
                    "since); seglab replaces only its own outputs: choose another "
                    f"{key}= or move the file away"
                )

    def record(self, name: str) -> None:
        """`name` (relative to the folder) was just written."""
        if not self._compacted:  # the record of earlier runs, less the files gone since
            self._compacted = True
            self.digests = {n: d for n, d in self.digests.items() if (self.folder / n).is_file()}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(f".partial-{os.getpid()}")
            partial.write_text(
                json.dumps({"folder": str(self.folder.resolve())})
                + "\n"
                + "".join(_record_line(n, d) for n, d in self.digests.items())
            )
            partial.replace(self.path)
        self.digests[name] = digest = _sha1(self.folder / name)
        with self.path.open("a") as record:
            record.write(_record_line(name, digest))


def _record_line(name: str, digest: str) -> str:
    return json.dumps({"name": name, "sha1": digest}) + "\n"


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies below it, links followed."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or path.is_relative_to(folder)


def test_set_folders(dataset: Any, where: str = "test_dataloader.dataset") -> list[tuple]:
    """(key, folder) of every folder a data set reads (the test set's by default), as mmengine
    joins them: each `data_prefix` value under `data_root` (an absolute one as it is), then
    `data_root` itself, through wrappers (`dataset`) and concatenations (`datasets`)."""
    if not isinstance(dataset, Mapping):
        return []
    root = dataset.get("data_root") or ""
    prefixes = dataset.get("data_prefix") or {}
    found = [
        (f"{where}.data_prefix.{key}", Path(root, prefix))
        for key, prefix in prefixes.items()
        if isinstance(prefix, str) and (root or prefix)
    ]
    if root:  # the data set's own folder, whatever its layout: its files are the user's
        found.append((f"{where}.data_root", Path(root)))
    found += test_set_folders(dataset.get("dataset"), f"{where}.dataset")
    for i, inner in enumerate(dataset.get("datasets") or ()):
        found += test_set_folders(inner, f"{where}.datasets.{i}")
    return found


# the data loaders of a run's config, the test set's first (it is the one `seglab test` reads)
DATA_SETS = (
    ("test_dataloader", "test"),
    ("val_dataloader", "validation"),
    ("train_dataloader", "training"),
)


def check_show_dir(show_dir: str, cfg: Config) -> None:
    """`show_dir=` is neither a folder (nor the data root) that the run's test, validation or
    training set reads, nor inside one: mmseg lists a folder's images recursively, so drawings
    there would replace test images or join them, or be trained on by the next run."""
    found = [
        (len(folder.resolve().parts), -i, key, folder, name)
        for i, (loader, name) in enumerate(DATA_SETS)
        for key, folder in test_set_folders(
            (cfg.get(loader) or {}).get("dataset"), f"{loader}.dataset"
        )
        if _inside(Path(show_dir), folder)
    ]
    if found:  # the innermost folder it lies in (of the test set, where two sets share it)
        *_, key, folder, name = max(found, key=lambda f: f[:2])
        raise ConfigError(
            f"show_dir={show_dir!r}: lies in {folder}, which the {name} set reads ({key}); "
            "seglab never writes among its inputs: choose a folder outside the data set"
        )


def check_writable(folder: Path, key: str) -> None:
    """`KEY=folder` can be made and written to: the folders missing are made and a probe file
    written in it, then all of it removed again, before any work is spent. A read-only or full
    file system, or a file in the way, is one line naming the path and the reason."""
    value = str(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{key}={value!r}: is a file; expected a folder (or a new one)")
    missing, parent = [], folder.absolute()
    while not parent.exists() and not parent.is_symlink():
        missing.append(parent)
        parent = parent.parent
    made: list[Path] = []
    try:
        for path in reversed(missing):
            path.mkdir()
            made.append(path)
        probe = folder / f".seglab-probe-{os.getpid()}"
        descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, b"seglab checks that it can write here\n")
        finally:
            os.close(descriptor)
            probe.unlink()
    except OSError as err:
        where = f": {err.filename}" if err.filename and str(err.filename) != value else ""
        space = " (free space on it)" if err.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        raise ConfigError(
            f"{key}={value!r}: cannot be written ({os_reason(err)}{where}); choose a folder on a "
            f"file system you can write to{space}"
        ) from None
    finally:
        for path in reversed(made):
            with contextlib.suppress(OSError):
                path.rmdir()


class ShowDirHook(SegVisualizationHook):
    """mmseg's visualization hook (ground truth beside prediction, as tools/test.py
    --show-dir), writing each test image's drawing to OUT_DIR under the image's own name with
    `.png` (its path below the test split's image folder, so flat for a flat folder), where
    mmseg's own hook writes `vis_data/vis_image/test_NAME.jpg_0.png` below the log folder.
    Before the checkpoint is loaded (`before_run`: the test set is built, the weights not yet
    loaded) a drawing that would replace a file seglab did not write is refused in one line;
    each drawing is recorded as seglab's (WrittenFiles)."""

    def __init__(self, out_dir: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.out_dir = Path(out_dir)
        self.written: list[Path] = []
        self._image_root: Path | None = None
        self._record = WrittenFiles(self.out_dir)

    def before_run(self, runner: Runner) -> None:
        dataset = runner.test_dataloader.dataset
        prefix = getattr(dataset, "data_prefix", {}).get("img_path")
        self._image_root = Path(prefix) if prefix else None
        self._record = WrittenFiles(self.out_dir)
        names = [
            self._name(Path(dataset.get_data_info(i)["img_path"])).as_posix()
            for i in range(len(dataset))
        ]
        self._record.refuse_replacing(names, "show_dir", str(self.out_dir))

    def after_test_iter(self, runner: Runner, batch_idx: int, data_batch=None, outputs=None):
        import mmcv

        visualizer = self._visualizer
        classes, palette = visualizer.dataset_meta["classes"], visualizer.dataset_meta["palette"]
        for output in outputs or ():
            image = Path(output.img_path)
            name = self._name(image)
            target = self.out_dir / name
            photo = mmcv.imread(str(image), channel_order="rgb")
            # mmseg's own drawing of each half (add_datasample writes the pair but never returns
            # it), without its class-name boxes: they cover small objects
            halves = [
                visualizer._draw_sem_seg(photo, output.get(key), classes, palette, False)
                for key in ("gt_sem_seg", "pred_sem_seg")
                if key in output
            ]
            captions = CAPTIONS if len(halves) == 2 else CAPTIONS[-1:]
            drawn = captioned(halves, captions)
            mmcv.imwrite(mmcv.rgb2bgr(drawn), str(target))  # creates the folders
            self._record.record(name.as_posix())
            self.written.append(target)

    def _name(self, image: Path) -> Path:
        if self._image_root is not None and image.is_relative_to(self._image_root):
            return image.relative_to(self._image_root).with_suffix(".png")
        return Path(image.stem + ".png")


def config_of_run(
    run_dir: Path, checkpoint: Path | None, tta: bool, show_dir: str | None, changes: dict
) -> Config:
    """The run's exported config, set up to test `checkpoint` as tools/test.py does."""
    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigError(
            f"run_dir={str(run_dir)!r} has no config.py; expected a seglab run directory"
        )
    # a Config without a file name: the Runner dumps it beside its logs, not over config.py
    cfg = Config(Config.fromfile(str(run_dir / CONFIG_FILE)).to_dict(), format_python_code=False)
    check_changes(cfg.to_dict(), changes)
    cfg.merge_from_dict({override_key(key): value for key, value in changes.items()})
    cfg.launcher = "none"  # one process, as tools/test.py without --launcher (a torchrun run too)
    cfg.work_dir = str(run_dir / TEST_DIR)
    cfg.load_from = str(checkpoint or last_checkpoint(run_dir))
    cfg.custom_hooks = [*(cfg.get("custom_hooks") or []), dict(type="CheckpointFitsHook")]
    cfg.test_evaluator = with_per_class_metrics(cfg.test_evaluator)
    if tta:  # multi-scale and flip, as tools/test.py --tta
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if show_dir:  # a drawing for every test image
        cfg.default_hooks.visualization = dict(
            type="ShowDirHook", out_dir=str(Path(show_dir).resolve()), draw=True, interval=1
        )
    cfg.experiment_name = f"test:{run_dir.name}@{time.time_ns()}"
    cfg.visualizer.name = f"{cfg.experiment_name}:visualizer"
    return cfg


def _missing_run_dir(changes: Mapping[str, Any]) -> ConfigError:
    """No run_dir=: a key that looks like a misspelt option is named."""
    for key in changes:
        if difflib.get_close_matches(key, TEST_OPTIONS, n=1, cutoff=0.7):
            hint = _closest(key, TEST_OPTIONS)
            return ConfigError(f"{key}={changes[key]}: no option {key}; {hint}")
    return ConfigError("seglab test: expected run_dir=DIR (a seglab run directory)")


def evaluate_command(args: Sequence[str]) -> dict:
    from seglab.checks.before_training import check_counts
    from seglab.run.train import release_singletons, stop_loader_workers

    options, changes = split_options(args, TEST_OPTIONS)
    if "run_dir" not in options:
        raise _missing_run_dir(changes)
    run_dir = Path(options["run_dir"])
    tta = true_or_false("tta", options["tta"]) if "tta" in options else False
    checkpoint = Path(options["checkpoint"]) if "checkpoint" in options else None
    if checkpoint is not None and not checkpoint.is_file():
        raise ConfigError(f"checkpoint={str(checkpoint)!r} is not a file")
    cfg = config_of_run(run_dir, checkpoint, tta, options.get("show_dir"), changes)
    check_counts(cfg)  # batch sizes and workers as the command line changed them
    check_files_as_they_load(cfg)  # a label beyond the classes is named, as in training
    if options.get("show_dir"):
        check_show_dir(options["show_dir"], cfg)
        check_writable(Path(options["show_dir"]), "show_dir")
    runner = None
    try:
        register_with_mmengine()
        register_class(HOOKS, ShowDirHook)
        runner = SeglabRunner.from_cfg(cfg)  # the quieter console training has
        metrics = runner.test()
    finally:
        if runner is not None:  # persistent workers would keep the process from exiting
            stop_loader_workers(runner)
        release_singletons(cfg)
    out = run_dir / (TEST_METRICS_TTA_FILE if tta else TEST_METRICS_FILE)
    record = {"checkpoint": cfg.load_from, **{k: json_value(v) for k, v in metrics.items()}}
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"test metrics: {', '.join(f'{k}={v}' for k, v in record.items())}\nwritten: {out}")
    shown = [h for h in runner.hooks if isinstance(h, ShowDirHook)]
    if shown:
        print(
            f"ground truth | prediction of {len(shown[0].written)} test image(s): "
            f"{shown[0].out_dir}/ (one PNG per image, named after it)"
        )
    return record


def check_device(device: str) -> str:
    """A torch device this machine has: `cpu`, `cuda` or `cuda:N` (torch's names)."""
    import torch

    kind, _, index = device.partition(":")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        if kind == "gpu" and not index and not gpus:
            raise _no_gpu(device)
        raise ConfigError(f"device={device}: expected cpu, cuda or cuda:N (torch's names)")
    if kind == "cuda" and not gpus:
        raise _no_gpu(device)
    if index and kind == "cuda" and int(index) >= gpus:
        raise ConfigError(
            f"device={device}: this machine has {gpus} GPU(s), cuda:0 to cuda:{gpus - 1}"
        )
    return device


def _no_gpu(device: str) -> ConfigError:
    import torch

    return ConfigError(
        f"device={device}: torch {torch.__version__} sees no CUDA GPU here; "
        "leave device out (cpu) or run where `seglab env` says CUDA available: True"
    )


def images_to_segment(image: Path) -> list[Path]:
    """The image, or a folder's images, each one OpenCV can read: one line for a file that is
    not an image (read before the model is built, header only)."""
    from PIL import Image, UnidentifiedImageError

    if image.is_dir():
        images = sorted(p for p in image.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise ConfigError(
                f"image={str(image)!r}: the folder holds no image ({', '.join(IMAGE_SUFFIXES)})"
            )
    elif image.suffix.lower() not in IMAGE_SUFFIXES:
        raise ConfigError(
            f"image={str(image)!r}: not an image; expected one of {', '.join(IMAGE_SUFFIXES)}"
            " or a folder of them"
        )
    else:
        images = [image]
    for path in images:
        try:
            with Image.open(path):
                pass
        except (UnidentifiedImageError, OSError) as err:
            raise ConfigError(f"image={str(path)!r}: cannot be read as an image ({err})") from None
    return images


def output_names(images: Sequence[Path]) -> list[tuple[str, str]]:
    """(overlay, label map) file names per image; two images that would share one is a line."""
    names = [(f"{p.stem}.png", f"{p.stem}{LABELS_SUFFIX}") for p in images]
    seen: dict[str, Path] = {}
    for path, pair in zip(images, names, strict=True):
        for name in pair:
            if name in seen:
                raise ConfigError(
                    f"image={str(path.parent)!r}: {seen[name].name} and {path.name} would both "
                    f"be written as {name}; rename one or segment them separately"
                )
            seen[name] = path
    return names


def label_map(prediction: np.ndarray, num_classes: int) -> np.ndarray:
    """Class indices as a PNG holds them: uint8 up to 256 classes, uint16 above."""
    return prediction.astype(np.uint8 if num_classes <= 256 else np.uint16)


def checked_inferencer(inferencer: type, source: str) -> type:
    """mmseg's inferencer that refuses a checkpoint which does not fit its model (mmseg loads
    what matches and warns), and logs a checkpoint's keys with control characters escaped."""
    from mmengine.logging import MMLogger

    from seglab.checkpoint_loading import check_fits
    from seglab.run.console import escape_logger_output

    escape_logger_output(MMLogger.get_current_instance())

    class CheckedInferencer(inferencer):
        def _load_weights_to_model(self, model, checkpoint, cfg) -> None:
            if checkpoint is not None:
                check_fits(model, checkpoint, source)
            super()._load_weights_to_model(model, checkpoint, cfg)

    return CheckedInferencer


def infer_command(args: Sequence[str]) -> list[Path]:
    """Segments each image with mmseg's `MMSegInferencer` and writes, per image, its overlay as
    `out/STEM.png` and its class indices as `out/STEM_labels.png` (one channel, the value of a
    pixel is its class). The inferencer builds the model as mmseg's tools do (SyncBN reverted on
    CPU, class names from the checkpoint); its own file layout (`out/vis/NAME.jpg` under the
    input's suffix, `out/pred/` numbered masks) is not used: the prediction is taken from it one
    image at a time, which also keeps a large folder out of memory, and the overlay drawn from
    it (`overlay`: mmseg's darkens the whole photo)."""
    import mmcv
    from mmseg.apis import MMSegInferencer

    options, changes = split_options(args, INFER_OPTIONS)
    for key, value in changes.items():
        hint = _closest(key, INFER_OPTIONS) or "seglab infer changes no config key"
        raise ConfigError(f"{key}={value}: no option {key}; {hint} ({INFER_USAGE})")
    missing = [k for k in ("checkpoint", "image", "out") if k not in options]
    if missing:
        raise ConfigError(f"seglab infer: {INFER_USAGE} (missing {', '.join(missing)})")
    checkpoint, image = Path(options["checkpoint"]), Path(options["image"])
    if checkpoint.is_dir():  # a run directory: its last checkpoint, whatever its iteration
        checkpoint = last_checkpoint(checkpoint, key="checkpoint")
    config = Path(options.get("config") or checkpoint.parent / CONFIG_FILE)
    for key, path in (("checkpoint", checkpoint), ("image", image), ("config", config)):
        if not path.exists():
            raise ConfigError(f"{key}={str(path)!r} does not exist")
    device = check_device(options.get("device", "cpu"))
    opacity = opacity_option(options.get("opacity", "0.5"))
    images = images_to_segment(image)
    names = output_names(images)
    out = Path(options["out"])
    record = check_out(out, image, names)
    register_with_mmengine()  # the checkpoint is loaded as data
    checked = checked_inferencer(MMSegInferencer, f"checkpoint={checkpoint}")
    inferencer = checked(str(config), str(checkpoint), device=device)
    inferencer.show_progress = False  # one image per call
    num_classes = len(inferencer.model.dataset_meta["classes"])
    out.mkdir(parents=True, exist_ok=True)
    written = []
    # the classes and palette mmseg's visualizer draws with (a checkpoint's own, else its data
    # set's), as its `visualize` sets them
    inferencer.visualizer.set_dataset_meta(**inferencer.model.dataset_meta)
    meta = inferencer.visualizer.dataset_meta
    for path, (drawn, labels) in zip(images, names, strict=True):
        prediction = inferencer(str(path))["predictions"]
        photo = mmcv.imread(str(path), channel_order="rgb")  # as the inferencer reads it
        mmcv.imwrite(mmcv.rgb2bgr(overlay(photo, prediction, meta, opacity)), str(out / drawn))
        record.record(drawn)
        mmcv.imwrite(label_map(prediction, num_classes), str(out / labels))
        record.record(labels)
        written.append(out / drawn)
    print(
        f"segmented {len(written)} image(s) into {out}/: STEM.png (overlay) and "
        f"STEM{LABELS_SUFFIX} (class index per pixel, {num_classes} classes)"
    )
    return written


def check_out(out: Path, image: Path, names: Sequence[tuple[str, str]]) -> WrittenFiles:
    """`out=` is a folder (or none yet) other than the images' own, and none of the files it
    would write replaces one seglab did not write there; its record of what seglab wrote."""
    folder = image if image.is_dir() else image.parent
    if out.resolve() == folder.resolve():
        raise ConfigError(
            f"out={str(out)!r}: is the folder of the images to segment (image={str(image)!r}); "
            "seglab never writes among its inputs: choose another out= (a new folder)"
        )
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out={str(out)!r}: is a file; expected a folder (or a new one)")
    record = WrittenFiles(out)
    record.refuse_replacing([name for pair in names for name in pair], "out", str(out))
    check_writable(out, "out")
    return record


def opacity_option(value: str) -> float:
    """`opacity=`: a number from 0 to 1 (seglab infer, of a checkpoint or of model.onnx)."""
    try:
        opacity = float(value)
    except ValueError:
        opacity = -1.0
    if not 0 <= opacity <= 1:
        raise ConfigError(f"opacity={value}: expected a number from 0 to 1")
    return opacity
