"""A run's segmentor to ONNX with torch's own exporter.

mmdeploy, OpenMMLab's exporter, is not used: its last release (1.3.1) pins protobuf<=3.20.2,
which ONNX Runtime 1.32 (protobuf>=4.25.8), wandb and tensorboard here cannot run with, and its
rewriters were written for torch 1.x and 2.0. torch.onnx.export with dynamo=True (torch.export,
then onnxscript) is tried first; where it fails, the TorchScript exporter (dynamo=False).

What is exported is `SegmentationNetwork`: raw pixels in, normalised inside the graph, then
mmseg's own `encode_decode` (backbone, neck, decode head and its resize of the logits to the
input), so that what runs is the model's code, not a copy of it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from seglab.errors import ConfigError

DYNAMO = "torch.onnx.export(dynamo=True)"
TORCHSCRIPT = "torch.onnx.export(dynamo=False)"
TORCHSCRIPT_OPSET = 17  # the TorchScript exporter's newest well-tested opset
EXPORTED_SEGMENTORS = ("EncoderDecoder", "CascadeEncoderDecoder")


def unexportable_operator(model: nn.Module) -> tuple[str, str] | None:
    """(where in the model, class name) of the first module from mmcv.ops: mmcv's compiled
    operators (CrissCrossAttention, PSAMask, DeformConv2d, CARAFE, ...) have no ONNX form that
    ONNX Runtime runs without mmdeploy's custom operator library."""
    for name, module in model.named_modules():
        if type(module).__module__.startswith("mmcv.ops"):
            return name, type(module).__name__
    return None


def refuse_unexportable(model: nn.Module) -> None:
    kind = type(model).__name__
    if kind not in EXPORTED_SEGMENTORS:
        raise ConfigError(
            f"model.type={kind}: seglab deploy exports {' and '.join(EXPORTED_SEGMENTORS)} "
            "models (an image in, logits out)"
        )
    found = unexportable_operator(model)
    if found:
        where, name = found
        raise ConfigError(
            f"model.{where}: {name} is a compiled operator of mmcv.ops, which torch's ONNX "
            "exporter cannot export (mmdeploy's plugins would be needed); expected a model "
            "built of torch operators only"
        )


class AdaptiveAvgPool2dAsMatmul(nn.Module):
    """nn.AdaptiveAvgPool2d as two matrix products with torch's own bins (bin i of n inputs
    into o: from floor(i*n/o) to ceil((i+1)*n/o)). torch.export decomposes the adaptive pool
    into gathers whose indices are fixed at the export's size: the exported graph then fails, or
    pools the wrong pixels, at any other size (PSPNet's and UPerNet's pyramid pooling). Here
    the bins are computed from the input's size in the graph."""

    def __init__(self, output_size) -> None:
        super().__init__()
        size = output_size if isinstance(output_size, tuple | list) else (output_size,) * 2
        self.output_size = tuple(size)

    @staticmethod
    def _bins(n, o: int, like: torch.Tensor) -> torch.Tensor:
        i = torch.arange(o, device=like.device)
        start = torch.div(i * n, o, rounding_mode="floor")
        end = torch.div((i + 1) * n + o - 1, o, rounding_mode="floor")
        j = torch.arange(n, device=like.device)
        inside = (j[None] >= start[:, None]) & (j[None] < end[:, None])
        return inside.to(like.dtype) / (end - start).to(like.dtype)[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        oh, ow = (o if o is not None else n for o, n in zip(self.output_size, (h, w), strict=True))
        if oh == 1 and ow == 1:
            return x.mean((-2, -1), keepdim=True)
        return self._bins(h, oh, x) @ (x @ self._bins(w, ow, x).transpose(0, 1))


def exportable(model: nn.Module) -> int:
    """Replaces, in place, the modules torch exports only for the example's size; how many."""
    replaced = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.AdaptiveAvgPool2d:
                setattr(module, name, AdaptiveAvgPool2dAsMatmul(child.output_size))
                replaced += 1
    return replaced


class SegmentationNetwork(nn.Module):
    """Raw pixels (N x 3 x H x W, 0-255, in the model's channel order) to logits at the
    input's size: the data preprocessor's normalisation, then the segmentor's encode_decode."""

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.segmentor = segmentor
        preprocessor = segmentor.data_preprocessor
        normalise = getattr(preprocessor, "_enable_normalize", False)
        mean = preprocessor.mean if normalise else torch.zeros(3)
        std = preprocessor.std if normalise else torch.ones(3)
        self.register_buffer("mean", mean.detach().clone().float().view(1, -1, 1, 1))
        self.register_buffer("std", std.detach().clone().float().view(1, -1, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = (image - self.mean) / self.std
        size = x.shape[2:]  # a torch.Size: mmseg's decode heads resize their logits to it
        metas = [dict(img_shape=size, pad_shape=size, ori_shape=size)]
        return self.segmentor.encode_decode(x, metas)


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """The exporters' progress lines, warnings and notes (torchvision's operators it skips,
    TracerWarnings) off the console: the command prints what was exported and how."""
    names = ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "onnx_ir")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            torch.no_grad(),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def export_onnx(network: nn.Module, example: torch.Tensor, path: Path, dynamic_size: bool) -> str:
    """Writes `network` at `example`'s shape to `path` (weights inside the file), the batch
    dynamic and, where `dynamic_size`, the height and width too; the exporter that worked."""
    from torch.export import Dim

    spatial = {2: Dim.DYNAMIC, 3: Dim.DYNAMIC} if dynamic_size else {}
    names = dict(input_names=["image"], output_names=["logits"])
    errors = []
    with quiet_exporter():
        try:
            program = torch.onnx.export(
                network,
                (example,),
                dynamo=True,
                dynamic_shapes={"image": {0: Dim.DYNAMIC, **spatial}},
                verbose=False,
                **names,
            )
            program.save(str(path), external_data=False)
            return DYNAMO
        except Exception as err:  # whatever torch.export or onnxscript could not translate
            errors.append(f"{DYNAMO}: {_last_line(err)}")
        axes = {0: "batch", **({2: "height", 3: "width"} if dynamic_size else {})}
        try:
            torch.onnx.export(
                network,
                (example,),
                str(path),
                dynamo=False,
                opset_version=TORCHSCRIPT_OPSET,
                dynamic_axes={"image": axes, "logits": axes},
                **names,
            )
            return TORCHSCRIPT
        except Exception as err:
            errors.append(f"{TORCHSCRIPT}: {_last_line(err)}")
    raise ConfigError(f"format=onnx: the model cannot be exported ({'; '.join(errors)})")


def _last_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return ascii(f"{type(err).__name__}: {lines[-1] if lines else ''}")[1:-1][:300]
