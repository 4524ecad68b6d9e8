"""An exported model.onnx with its preprocess.json in ONNX Runtime.

A file seglab did not write runs no code: the graph is parsed as data first (onnx's protobuf
reader, external data not followed) and its input and output checked against preprocess.json;
ONNX Runtime then gets the file with no custom operator library registered (an operator it does
not have is an error, not a library to load) and the graph's weights must lie inside the file
(an external-data reference could make it read any file the user can read).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from seglab.deploy import pipeline
from seglab.deploy.preprocess import Preprocess
from seglab.errors import ConfigError

MAX_MODEL_BYTES = 2**31  # protobuf's limit: a larger graph keeps its weights in other files
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def _dims(value) -> list[int | str]:
    """A graph input's or output's dimensions: a number, or the name of a free one."""
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


def graph_tensors(graph) -> Iterator:
    """Every tensor a graph holds: its weights and those inside node attributes (a Constant's
    value), in subgraphs too; any of them may name an external file to read."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for sub in [attribute.g] if attribute.HasField("g") else []:
                yield from graph_tensors(sub)
            for sub in attribute.graphs:
                yield from graph_tensors(sub)


def check_graph(path: Path, pre: Preprocess, key: str = "model") -> None:
    """The graph's one input and first output as preprocess.json describes them, and no weight
    outside the file; one line naming what disagrees."""
    import onnx

    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise ConfigError(f"{key}={str(path)!r}: {size} bytes; expected an ONNX file under 2 GiB")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError, or anything a damaged file raises
        raise ConfigError(
            f"{key}={str(path)!r}: cannot be read as an ONNX model ({type(err).__name__}); "
            "expected the model.onnx seglab deploy wrote"
        ) from None
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph_tensors(model.graph)):
        raise ConfigError(
            f"{key}={str(path)!r}: keeps weights in other files (external data); expected "
            "a self-contained model.onnx, as seglab deploy writes"
        )
    weights = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    if len(inputs) != 1 or not model.graph.output:
        raise ConfigError(
            f"{key}={str(path)!r}: has {len(inputs)} inputs and {len(model.graph.output)} "
            "outputs; expected one image input and a logits output"
        )
    image, logits = inputs[0], model.graph.output[0]
    where = f"{key}={str(path)!r}"
    _check_name(where, "input", image.name, pre.input_name)
    _check_name(where, "output", logits.name, pre.output_name)
    dims_in, dims_out = _dims(image), _dims(logits)
    if len(dims_in) != 4 or dims_in[1] != 3:
        raise ConfigError(f"{where}: input {image.name} is {dims_in}; expected [N, 3, H, W]")
    fixed = [d for d in dims_in[2:] if isinstance(d, int) and d > 0]
    expected = list(pre.input_size) if pre.input_size else []
    if fixed != expected:
        said = f"input_size={expected}" if expected else "input_size=null (any size)"
        raise ConfigError(
            f"{where}: input {image.name} is {dims_in}, but its preprocess.json says {said}; "
            "expected the preprocess.json written with this model"
        )
    # a channel count the graph leaves unnamed (the TorchScript exporter's Resize) is checked
    # on each run instead (`network`)
    unnamed = len(dims_out) == 4 and isinstance(dims_out[1], str)
    if len(dims_out) != 4 or not (unnamed or dims_out[1] == pre.out_channels):
        raise ConfigError(
            f"{where}: output {logits.name} is {dims_out}, but its preprocess.json says "
            f"out_channels={pre.out_channels} (num_classes={pre.num_classes}); expected "
            "the preprocess.json written with this model"
        )


def _check_name(where: str, kind: str, found: str, said: str) -> None:
    if found != said:
        raise ConfigError(
            f"{where}: its {kind} is named {ascii(found)}, but its preprocess.json says "
            f"{kind}_name={ascii(said)}; expected the preprocess.json written with this model"
        )


def providers(device: str) -> list:
    """ONNX Runtime's execution providers for `device` (cpu, cuda, cuda:N); a GPU this
    onnxruntime build cannot use is one line."""
    import onnxruntime

    kind, _, index = device.partition(":")
    if kind not in PROVIDERS or (index and (kind == "cpu" or not index.isdigit())):
        raise ConfigError(f"device={device}: expected cpu, cuda or cuda:N")
    if kind == "cpu":
        return [PROVIDERS["cpu"]]
    if PROVIDERS["cuda"] not in onnxruntime.get_available_providers():
        raise ConfigError(
            f"device={device}: this onnxruntime {onnxruntime.__version__} has no "
            f"CUDAExecutionProvider (it has {', '.join(onnxruntime.get_available_providers())});"
            " install onnxruntime-gpu, or leave device out (cpu)"
        )
    return [(PROVIDERS["cuda"], {"device_id": int(index or 0)}), PROVIDERS["cpu"]]


class OnnxSegmenter:
    """Segments photos with model.onnx as mmseg's inferencer does with the PyTorch model."""

    def __init__(self, model: Path, pre: Preprocess, device: str = "cpu") -> None:
        import onnxruntime

        chosen = providers(device)
        check_graph(model, pre)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: its notes on graph fusions are not ours
        try:
            self.session = onnxruntime.InferenceSession(
                str(model), sess_options=options, providers=chosen
            )
        except Exception as err:  # ONNX Runtime's own errors: one line, not its traceback
            reason = ascii(str(err).strip().splitlines()[-1] if str(err).strip() else "")[1:-1]
            raise ConfigError(
                f"model={str(model)!r}: ONNX Runtime cannot load it ({reason[:300]}); expected "
                "a model.onnx of standard operators, as seglab deploy writes"
            ) from None
        self.pre = pre
        self.model = model

    def network(self, batch: np.ndarray) -> np.ndarray:
        """The graph on an NCHW float32 batch: NCHW logits at the batch's size."""
        fixed = self.pre.input_size
        if fixed and tuple(batch.shape[2:]) != tuple(fixed):
            raise ConfigError(
                f"model={str(self.model)!r}: takes {fixed[0]}x{fixed[1]} inputs only (fixed at "
                f"export, see its preprocess.json), got {batch.shape[2]}x{batch.shape[3]}; "
                "expected images the test pipeline resizes to that size"
            )
        logits = self.session.run([self.pre.output_name], {self.pre.input_name: batch})[0]
        if logits.ndim != 4 or logits.shape[1] != self.pre.out_channels:
            raise ConfigError(
                f"model={str(self.model)!r}: gave logits of shape {list(logits.shape)}, but its "
                f"preprocess.json says out_channels={self.pre.out_channels}; expected the "
                "preprocess.json written with this model"
            )
        return logits

    def logits(self, photo_bgr: np.ndarray) -> np.ndarray:
        """CxHxW logits at the photo's own size (HxWx3 BGR uint8, as OpenCV reads it)."""
        image, (bottom, right) = pipeline.padded(
            pipeline.network_input(photo_bgr, self.pre), self.pre
        )
        if self.pre.slide is not None:
            out = pipeline.slide(self.network, image, self.pre)
        else:
            out = self.network(image[None])[0]
        h, w = out.shape[1:]
        out = out[:, : h - bottom, : w - right]
        return pipeline.bilinear(out, photo_bgr.shape[:2], self.pre.align_corners)

    def predict(self, photo_bgr: np.ndarray) -> np.ndarray:
        """The class index of every pixel of the photo."""
        return pipeline.labels(self.logits(photo_bgr), self.pre)
