"""`preprocess.json`: what a program needs besides `model.onnx` to segment an image as the run's
PyTorch model does, written by `seglab deploy` and read back by `seglab infer model=...`.

The graph takes raw pixel values (0 to 255, float32, NCHW) in the channel order the model was
trained on and normalises them itself, so `mean` and `std` are for the record (and for padding,
which mmseg does after normalising). Everything else is the caller's: the test pipeline's resize
(`resize`), padding (`pad`), a sliding window (`slide`), the resize of the logits back to the
photo and the argmax.

A file may come from anyone: it is read with `json.load` alone (no NaN or Infinity) and every
key is checked for its type and range before anything uses it; a bad one is one line naming the
key, the value and what was expected.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seglab.errors import ConfigError

FORMAT = "seglab-onnx/1"
MODEL_FILE = "model.onnx"
PREPROCESS_FILE = "preprocess.json"
PARTIAL = ".partial"  # the files' names until the exported graph has passed its check
CHANNEL_ORDERS = ("rgb", "bgr")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area", "lanczos")  # mmcv's cv2 names
MAX_SIDE = 16384  # pixels: beyond any camera a segmentation model is run on
MAX_DIVISOR = 4096
MAX_CLASSES = 65536  # the label map is uint16 above 256 classes
MAX_JSON_BYTES = 32 * 2**20
OPSETS = (7, 30)  # ONNX's default-domain opsets, with room for a few to come
# keys kept as written, for the record: nothing reads them to segment
RECORDED = ("exporter", "parity", "source", "notes")


@dataclass(frozen=True)
class Preprocess:
    """The keys of preprocess.json that segmenting reads; `record` keeps the rest (exporter,
    parity, source) as written."""

    input_name: str
    output_name: str
    opset: int
    channel_order: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int] | None  # (h, w) of a graph with a fixed size, else None
    resize: dict | None  # {"scale": (w, h) | None, "scale_factor": (w, h) | None, ...}
    pad: dict | None  # {"size_divisor": int | None, "size": (h, w) | None, "value": float}
    slide: dict | None  # {"crop_size": (h, w), "stride": (h, w)}
    align_corners: bool
    num_classes: int
    out_channels: int
    threshold: float
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    record: dict = field(default_factory=dict, compare=False)

    def to_json(self) -> dict:
        """What preprocess.json holds (tuples as lists), `record`'s keys after these."""
        keys = {
            "format": FORMAT,
            "model": MODEL_FILE,
            "opset": self.opset,
            "input_name": self.input_name,
            "output_name": self.output_name,
            "input_layout": "NCHW float32, raw pixel values 0-255, normalised in the graph",
            "channel_order": self.channel_order,
            "normalized_in_graph": True,
            "mean": list(self.mean),
            "std": list(self.std),
            "input_size": list(self.input_size) if self.input_size else None,
            "resize": _listed(self.resize),
            "pad": _listed(self.pad),
            "slide": _listed(self.slide),
            "align_corners": self.align_corners,
            "num_classes": self.num_classes,
            "out_channels": self.out_channels,
            "threshold": self.threshold,
            "classes": list(self.classes),
            "palette": [list(c) for c in self.palette],
        }
        return {**keys, **{k: v for k, v in self.record.items() if k not in keys}}

    @property
    def meta(self) -> dict:
        """Classes and palette as mmseg's dataset_meta holds them (for `overlay`)."""
        return {"classes": list(self.classes), "palette": [list(c) for c in self.palette]}


def _listed(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _listed(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_listed(v) for v in value]
    return value


def write_preprocess(pre: Preprocess, path: Path) -> None:
    """One key a line, each value on it (a palette of 150 colours stays one line)."""
    lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in pre.to_json().items()]
    path.write_text("{\n" + ",\n".join(lines) + "\n}\n")


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def load_preprocess(path: Path) -> Preprocess:
    """preprocess.json read as data and checked key by key (`Checked`)."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise ConfigError(
                f"preprocess={str(path)!r}: {size} bytes; expected a preprocess.json of at most "
                f"{MAX_JSON_BYTES // 2**20} MiB (seglab deploy writes a few KiB)"
            )
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle, parse_constant=_no_constant)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        reason = ascii(str(err))[1:-1][:200]
        raise ConfigError(
            f"preprocess={str(path)!r}: cannot be read as JSON ({reason}); expected the "
            f"{PREPROCESS_FILE} seglab deploy wrote beside model.onnx"
        ) from None
    return Checked(path, data).preprocess()


def _shown(value: Any) -> str:
    """A value of a file seglab did not write, as JSON (a string quoted, a control character
    escaped: nothing a terminal acts on), cut short."""
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 60 else text[:57] + "..."


class Checked:
    """The checks of one file's keys: each reader returns the value or raises one line."""

    def __init__(self, path: Path, data: Any) -> None:
        self.path = path
        if not isinstance(data, dict):
            raise ConfigError(
                f"{path}: holds a JSON {type(data).__name__}; expected an object (seglab deploy's "
                f"{PREPROCESS_FILE})"
            )
        self.data = data

    def bad(self, key: str, value: Any, expected: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}={_shown(value)}: expected {expected}")

    def get(self, key: str, default: Any = KeyError) -> Any:
        if key not in self.data:
            if default is KeyError:
                raise ConfigError(f"{self.path}: no key {key}; expected seglab deploy's keys")
            return default
        return self.data[key]

    def integer(self, key: str, value: Any, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.bad(key, value, f"a whole number from {low} to {high}")
        return value

    def number(self, key: str, value: Any, low: float, high: float, positive=False) -> float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if (
            not ok
            or not math.isfinite(value)
            or not low <= value <= high
            or (positive and value <= 0)
        ):
            span = f"above 0, at most {high:g}" if positive else f"from {low:g} to {high:g}"
            raise self.bad(key, value, f"a number {span}")
        return float(value)

    def pair(self, key: str, value: Any, high: int = MAX_SIDE) -> tuple[int, int]:
        if not isinstance(value, list) or len(value) != 2:
            raise self.bad(key, value, f"two whole numbers [h, w] from 1 to {high}")
        return (
            self.integer(f"{key}[0]", value[0], 1, high),
            self.integer(f"{key}[1]", value[1], 1, high),
        )

    def text(self, key: str, value: Any, choices: Sequence[str] = ()) -> str:
        if not isinstance(value, str) or (choices and value not in choices):
            expected = " or ".join(choices) if choices else "a string"
            raise self.bad(key, value, expected)
        return value

    def flag(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.bad(key, value, "true or false")
        return value

    def channels(self, key: str, positive: bool) -> tuple[float, ...]:
        value = self.get(key)
        if not isinstance(value, list) or len(value) != 3:
            raise self.bad(key, value, "3 numbers, one per channel")
        return tuple(
            self.number(f"{key}[{i}]", v, -1e4, 1e4, positive) for i, v in enumerate(value)
        )

    def optional(self, key: str) -> dict | None:
        value = self.get(key, None)
        if value is not None and not isinstance(value, dict):
            raise self.bad(key, value, "an object or null")
        return value

    def resize(self) -> dict | None:
        value = self.optional("resize")
        if value is None:
            return None
        scale, factor = value.get("scale"), value.get("scale_factor")
        if scale is None and factor is None:
            raise self.bad("resize", value, "a scale [w, h] or a scale_factor [w, h]")
        checked_factor = None
        if factor is not None:
            if not isinstance(factor, list) or len(factor) != 2:
                raise self.bad("resize.scale_factor", factor, "two numbers [w, h] above 0")
            checked_factor = tuple(
                self.number(f"resize.scale_factor[{i}]", f, 0, 64, positive=True)
                for i, f in enumerate(factor)
            )
        return {
            "scale": self.pair("resize.scale", scale) if scale is not None else None,
            "scale_factor": checked_factor,
            "keep_ratio": self.flag("resize.keep_ratio", value.get("keep_ratio", False)),
            "interpolation": self.text(
                "resize.interpolation", value.get("interpolation", "bilinear"), INTERPOLATIONS
            ),
        }

    def pad(self) -> dict | None:
        value = self.optional("pad")
        if value is None:
            return None
        divisor, size = value.get("size_divisor"), value.get("size")
        if divisor is None and size is None:
            raise self.bad("pad", value, "a size_divisor or a size [h, w]")
        return {
            "size_divisor": None
            if divisor is None
            else self.integer("pad.size_divisor", divisor, 1, MAX_DIVISOR),
            "size": None if size is None else self.pair("pad.size", size),
            "value": self.number("pad.value", value.get("value", 0), -1e4, 1e4),
        }

    def slide(self) -> dict | None:
        value = self.optional("slide")
        if value is None:
            return None
        crop = self.pair("slide.crop_size", value.get("crop_size"))
        stride = self.pair("slide.stride", value.get("stride"))
        if stride[0] > crop[0] or stride[1] > crop[1]:
            raise self.bad("slide.stride", list(stride), f"at most the crop size {list(crop)}")
        return {"crop_size": crop, "stride": stride}

    def classes(self, count: int) -> tuple[str, ...]:
        value = self.get("classes")
        if not isinstance(value, list) or len(value) != count:
            raise self.bad("classes", value, f"a list of num_classes={count} names")
        return tuple(self.text(f"classes[{i}]", name) for i, name in enumerate(value))

    def palette(self, count: int) -> tuple[tuple[int, int, int], ...]:
        value = self.get("palette")
        if not isinstance(value, list) or len(value) != count:
            raise self.bad("palette", value, f"a list of num_classes={count} [r, g, b] colours")
        colours = []
        for i, colour in enumerate(value):
            if not isinstance(colour, list) or len(colour) != 3:
                raise self.bad(f"palette[{i}]", colour, "[r, g, b], each 0 to 255")
            colours.append(
                tuple(self.integer(f"palette[{i}][{j}]", c, 0, 255) for j, c in enumerate(colour))
            )
        return tuple(colours)

    def preprocess(self) -> Preprocess:
        form = self.get("format")
        if form != FORMAT:
            raise self.bad("format", form, f"{FORMAT!r} (seglab deploy's)")
        num_classes = self.integer("num_classes", self.get("num_classes"), 1, MAX_CLASSES)
        out_channels = self.integer("out_channels", self.get("out_channels"), 1, MAX_CLASSES)
        if out_channels not in (num_classes, 1) or (out_channels == 1 and num_classes != 2):
            raise self.bad(
                "out_channels", out_channels, f"num_classes={num_classes} (or 1 for 2 classes)"
            )
        size = self.get("input_size", None)
        return Preprocess(
            input_name=self.text("input_name", self.get("input_name")),
            output_name=self.text("output_name", self.get("output_name")),
            opset=self.integer("opset", self.get("opset"), *OPSETS),
            channel_order=self.text("channel_order", self.get("channel_order"), CHANNEL_ORDERS),
            mean=self.channels("mean", positive=False),
            std=self.channels("std", positive=True),
            input_size=None if size is None else self.pair("input_size", size),
            resize=self.resize(),
            pad=self.pad(),
            slide=self.slide(),
            align_corners=self.flag("align_corners", self.get("align_corners")),
            num_classes=num_classes,
            out_channels=out_channels,
            threshold=self.number("threshold", self.get("threshold", 0.5), 0, 1),
            classes=self.classes(num_classes),
            palette=self.palette(num_classes),
            record={k: v for k, v in self.data.items() if k in RECORDED},
        )


# the test pipeline's transforms the caller of the graph reproduces (pipeline.py); the loaders
# of annotations are left out, as mmseg's inferencer leaves them out
LOADERS = ("LoadImageFromFile", "InferencerLoader")
SKIPPED = ("LoadAnnotations", "LoadDepthAnnotation", "PackSegInputs")
RESIZE_KEYS = {"type", "scale", "scale_factor", "keep_ratio", "interpolation", "backend"}
RESIZE_KEYS |= {"clip_object_border"}  # boxes only


def test_resize(pipeline: Sequence[Mapping], where: str) -> dict | None:
    """The test pipeline's one `Resize`, as preprocess.json keeps it; a transform seglab does not
    reproduce is one line naming it."""
    found = None
    for i, step in enumerate(pipeline):
        kind, key = step.get("type"), f"{where}.{i}"
        if kind in LOADERS:
            odd = {k: v for k, v in step.items() if k not in ("type", "backend_args")}
            if odd not in ({}, {"color_type": "color"}, {"imdecode_backend": "cv2"}):
                raise ConfigError(
                    f"{key}={dict(step)}: seglab deploy reads images as OpenCV does (colour, "
                    "BGR); expected LoadImageFromFile without other options"
                )
        elif kind == "Resize" and found is None and set(step) <= RESIZE_KEYS:
            if step.get("backend", "cv2") != "cv2":
                raise ConfigError(f"{key}.backend={step['backend']}: expected cv2")
            scale = step.get("scale")
            factor = step.get("scale_factor")
            found = {
                "scale": None if scale is None else _scale(scale, key),
                "scale_factor": None if factor is None else _factor(factor),
                "keep_ratio": bool(step.get("keep_ratio", False)),
                "interpolation": step.get("interpolation", "bilinear"),
            }
        elif kind not in SKIPPED:
            raise ConfigError(
                f"{key}.type={kind}: seglab deploy reproduces a test pipeline of "
                "LoadImageFromFile, one Resize and PackSegInputs; expected those only"
            )
    return found


def _short(value: Any) -> float:
    return float(f"{float(value):.7g}")


def _scale(scale: Any, key: str) -> tuple[int, int]:
    if isinstance(scale, int):
        return (scale, scale)
    if isinstance(scale, Sequence) and len(scale) == 2:
        return (int(scale[0]), int(scale[1]))
    raise ConfigError(f"{key}.scale={scale}: expected (w, h)")


def _factor(factor: Any) -> tuple[float, float]:
    if isinstance(factor, int | float):
        return (float(factor), float(factor))
    return (float(factor[0]), float(factor[1]))


def from_model(
    model: Any, cfg: Mapping, meta: Mapping, opset: int, input_size: tuple | None
) -> Preprocess:
    """preprocess.json's keys for a built mmseg segmentor, its run's config and the classes and
    palette mmseg's visualizer draws it with (`meta`)."""
    dp = model.data_preprocessor
    normalise = getattr(dp, "_enable_normalize", False)
    # as the config wrote them (the buffers are float32: 123.675 reads 123.67500305...)
    mean = tuple(_short(v) for v in dp.mean.flatten()) if normalise else (0.0, 0.0, 0.0)
    std = tuple(_short(v) for v in dp.std.flatten()) if normalise else (1.0, 1.0, 1.0)
    pad_cfg = getattr(dp, "test_cfg", None) or {}
    pad = None
    if pad_cfg.get("size") or pad_cfg.get("size_divisor"):
        size = pad_cfg.get("size")
        pad = {
            "size_divisor": pad_cfg.get("size_divisor") if not size else None,
            "size": tuple(size) if size else None,
            "value": float(dp.pad_val),
        }
    test_cfg = model.test_cfg or {}
    slide = None
    if test_cfg.get("mode", "whole") == "slide":
        slide = {"crop_size": tuple(test_cfg["crop_size"]), "stride": tuple(test_cfg["stride"])}
    head = model.decode_head[-1] if isinstance(model.decode_head, Iterable) else model.decode_head
    pipeline = cfg["test_dataloader"]["dataset"]["pipeline"]
    return Preprocess(
        input_name="image",
        output_name="logits",
        opset=opset,
        channel_order="rgb" if dp.channel_conversion else "bgr",
        mean=mean,
        std=std,
        input_size=tuple(input_size) if input_size else None,
        resize=test_resize(pipeline, "test_dataloader.dataset.pipeline"),
        pad=pad,
        slide=slide,
        align_corners=bool(model.align_corners),
        num_classes=len(meta["classes"]),
        out_channels=int(model.out_channels),
        threshold=float(getattr(head, "threshold", None) or 0.5),
        classes=tuple(str(c) for c in meta["classes"]),
        palette=tuple(tuple(int(v) for v in c) for c in meta["palette"]),
    )
