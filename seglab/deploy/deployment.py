"""One `seglab deploy`: the run's model built and loaded as `seglab infer` loads it, refused
before anything is exported where it cannot be, its PyTorch outputs taken on the sample images,
then exported, loaded back as a user would load it (preprocess.json read and validated, the
graph checked and run by ONNX Runtime) and compared. The files keep their `.partial` names until
the comparison passes."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config

from seglab.deploy import export, pipeline
from seglab.deploy.onnx_runtime import OnnxSegmenter
from seglab.deploy.parity import Parity, compare
from seglab.deploy.preprocess import (
    MODEL_FILE,
    PARTIAL,
    PREPROCESS_FILE,
    Preprocess,
    from_model,
    load_preprocess,
    test_resize,
    write_preprocess,
)
from seglab.errors import ConfigError
from seglab.evaluate import WrittenFiles, checked_inferencer
from seglab.run.registry import register_with_mmengine
from seglab.run_dirs.files import CONFIG_FILE

SAMPLE_IMAGES = 4  # of the validation set, spread over it: parity in seconds on a CPU
# the check of a graph exported with a free size: batch 2, this much taller and wider
PROBE_GROWTH = (32, 64)


def validation_images(cfg, count: int = SAMPLE_IMAGES) -> list[Path]:
    """`count` images spread over the run's validation set (its test set where it has none), as
    its data set lists them."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    for loader in ("val_dataloader", "test_dataloader"):
        dataset_cfg = (cfg.get(loader) or {}).get("dataset")
        if dataset_cfg:
            break
    else:
        raise ConfigError("images=: the run has no validation or test set; give images=PATH")
    init_default_scope(cfg.get("default_scope", "mmseg"))
    try:
        dataset = DATASETS.build(dataset_cfg)
        total = len(dataset)
        picks = sorted({round(i * (total - 1) / max(count - 1, 1)) for i in range(count)})
        images = [Path(dataset.get_data_info(i)["img_path"]) for i in picks if total]
    except (OSError, ValueError, KeyError, AssertionError) as err:
        raise ConfigError(
            f"{loader}.dataset: its images cannot be listed ({type(err).__name__}: {err}); "
            "give images=PATH (an image or a folder)"
        ) from None
    if not images:
        raise ConfigError(f"{loader}.dataset: holds no image; give images=PATH")
    return images


class Deployment:
    def __init__(self, run_dir: Path, checkpoint: Path, out: Path, record: WrittenFiles) -> None:
        self.run_dir, self.checkpoint, self.out, self.record = run_dir, checkpoint, out, record
        self.cfg = Config.fromfile(str(run_dir / CONFIG_FILE))
        # what the config alone tells, before the model is built
        kind = self.cfg.model.get("type")
        if kind not in export.EXPORTED_SEGMENTORS:
            raise ConfigError(
                f"model.type={kind}: seglab deploy exports "
                f"{' and '.join(export.EXPORTED_SEGMENTORS)} models (an image in, logits out)"
            )
        test_resize(self.cfg.test_dataloader.dataset.pipeline, "test_dataloader.dataset.pipeline")
        self.notes: list[str] = []

    def export(self, images: Sequence[Path] | None, tolerance: float, agreement: float) -> None:
        import mmcv
        from mmseg.apis import MMSegInferencer

        source = "images="
        if images is None:
            images, source = validation_images(self.cfg), "the run's validation set"
        register_with_mmengine()  # the checkpoint is loaded as data
        checked = checked_inferencer(MMSegInferencer, f"checkpoint={self.checkpoint}")
        inferencer = checked(self.cfg, str(self.checkpoint), device="cpu")
        inferencer.show_progress = False
        model = inferencer.model.eval()
        export.refuse_unexportable(model)
        inferencer.visualizer.set_dataset_meta(**model.dataset_meta)
        pre = from_model(model, self.cfg, inferencer.visualizer.dataset_meta, 0, None)
        photos = [mmcv.imread(str(p)) for p in images]
        with torch.no_grad():
            # (one image: the data sample itself, not a dict of them)
            samples = [inferencer(str(p), return_datasamples=True) for p in images]
        reference = [s.seg_logits.data.float().numpy() for s in samples]
        network = export.SegmentationNetwork(model).eval()
        example, dynamic = self._example(pre, photos[0])
        probe = self._probe(network, example) if dynamic else None
        swapped = export.exportable(model)
        if swapped:
            self.notes.append(
                f"{swapped} nn.AdaptiveAvgPool2d exported as matrix products (same bins), "
                "which follow the input's size"
            )
        for name in (MODEL_FILE, PREPROCESS_FILE):  # an earlier export must not look like this one
            if self.record.ours(name):
                (self.out / name).unlink()
        self.out.mkdir(parents=True, exist_ok=True)
        segmenter, pre = self._export(network, example, dynamic, pre, probe, tolerance)
        print(
            f"exported with {pre.record['exporter']}, opset {pre.opset}; {self.notes[-1]}",
            flush=True,
        )
        ours = [segmenter.logits(photo) for photo in photos]
        parity = compare(reference, ours, lambda logits: pipeline.labels(logits, pre))
        pre = self._recorded(pre, parity, tolerance, agreement, images, source)
        print(f"parity on {len(images)} image(s) of {source}: {parity.line()}", flush=True)
        problem = parity.problem(tolerance, agreement)
        if problem:
            raise ConfigError(
                f"tolerance={tolerance:g} agreement={agreement:g}: the exported model is not "
                f"the PyTorch model: {problem}; kept as {self.partial(MODEL_FILE)} for "
                f"inspection, {self.out / MODEL_FILE} not written"
            )
        for name in (MODEL_FILE, PREPROCESS_FILE):
            os.replace(self.partial(name), self.out / name)
            self.record.record(name)
        size = (self.out / MODEL_FILE).stat().st_size / 2**20
        print(
            f"wrote {self.out / MODEL_FILE} ({size:.1f} MiB) and {self.out / PREPROCESS_FILE}; "
            f"segment with: seglab infer model={self.out / MODEL_FILE} image=PATH out=DIR"
        )

    def partial(self, name: str) -> Path:
        return self.out / (name + PARTIAL)

    def _example(self, pre: Preprocess, photo: np.ndarray) -> tuple[torch.Tensor, bool]:
        """The input traced (batch 2, so that the batch stays free) and whether its size may
        stay free: a sliding window runs the network on crops of one size, which is exported."""
        if pre.slide is not None:
            h, w = pre.slide["crop_size"]
            self.notes.append(
                f"input size fixed at the sliding window's crop, {h}x{w} "
                "(model.test_cfg.mode='slide'): the caller slides it (preprocess.json's slide)"
            )
            return torch.zeros(2, 3, h, w), False
        image, _ = pipeline.padded(pipeline.network_input(photo, pre), pre)
        return torch.from_numpy(np.stack([image, image])), True

    def _probe(self, network: torch.nn.Module, example: torch.Tensor) -> tuple | None:
        """(input, PyTorch's logits) at another size, taken before any module is replaced;
        None where the model itself refuses that size."""
        import cv2

        h, w = example.shape[2:]
        size = (h + PROBE_GROWTH[0], w + PROBE_GROWTH[1])
        grown = cv2.resize(example[0].numpy().transpose(1, 2, 0), size[::-1])
        batch = torch.from_numpy(np.stack([grown, grown[::-1].copy()]).transpose(0, 3, 1, 2))
        batch = batch.contiguous()
        try:
            with torch.no_grad():
                return batch, network(batch).numpy()
        except Exception:  # a model that takes particular sizes only: the JSON says unchecked
            self.notes.append(f"free input size not checked: the model refuses {size[0]}x{size[1]}")
            return None

    def _export(self, network, example, dynamic, pre, probe, tolerance):
        """Export, load back as a user would, and check a free size on the probe; a graph that
        fails it is exported again at the example's size."""
        exporter = export.export_onnx(network, example, self.partial(MODEL_FILE), dynamic)
        segmenter, pre = self._loaded(pre, exporter, None if dynamic else example.shape[2:])
        if probe is None:
            return segmenter, pre
        batch, expected = probe
        try:
            got = segmenter.network(batch.numpy())
            diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else np.inf
        except Exception as err:  # ONNX Runtime's error on a shape the graph cannot take
            diff, reason = np.inf, f"{type(err).__name__}"
        else:
            reason = f"logits differ by {diff:.3g}"
        span = float(expected.max() - expected.min()) or 1.0
        shape = "x".join(str(d) for d in batch.shape)
        if np.isfinite(diff) and diff / span <= tolerance:
            self.notes.append(f"batch and input size free: checked at {shape} ({reason})")
            return segmenter, pre
        self.notes.append(
            f"input size fixed at {example.shape[2]}x{example.shape[3]}: exported with a free "
            f"size, the graph failed at {shape} ({reason})"
        )
        exporter = export.export_onnx(network, example, self.partial(MODEL_FILE), False)
        return self._loaded(pre, exporter, example.shape[2:])

    def _loaded(self, pre: Preprocess, exporter: str, size) -> tuple[OnnxSegmenter, Preprocess]:
        import onnx

        model = onnx.load(str(self.partial(MODEL_FILE)), load_external_data=False)
        opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        pre = dataclasses.replace(
            pre,
            opset=opset,
            input_size=tuple(int(d) for d in size) if size is not None else None,
            record={"exporter": f"{exporter}, torch {torch.__version__}", "notes": self.notes},
        )
        self._write(pre)
        loaded = load_preprocess(self.partial(PREPROCESS_FILE))  # as `seglab infer` reads it
        return OnnxSegmenter(self.partial(MODEL_FILE), loaded), pre

    def _recorded(self, pre, parity: Parity, tolerance, agreement, images, source) -> Preprocess:
        import onnxruntime

        record = {
            **pre.record,
            "parity": {
                **parity.to_json(tolerance, agreement),
                "on": source,
                "image_names": [Path(p).name for p in images],
            },
            "source": {
                "run_dir": str(self.run_dir),
                "checkpoint": str(self.checkpoint),
                "onnxruntime": onnxruntime.__version__,
            },
        }
        pre = dataclasses.replace(pre, record=record)
        self._write(pre)
        return pre

    def _write(self, pre: Preprocess) -> None:
        write_preprocess(pre, self.partial(PREPROCESS_FILE))
        self.record.record(PREPROCESS_FILE + PARTIAL)
        self.record.record(MODEL_FILE + PARTIAL)
