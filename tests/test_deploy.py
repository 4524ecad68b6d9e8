"""`seglab deploy` and `seglab infer model=...onnx`: the export checked against PyTorch on the
demo run and on zoo families trained 2 iterations here, the masks of ONNX Runtime against those of
the checkpoint, and every key of a preprocess.json and every shape of a model.onnx that seglab did
not write checked before anything runs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import mmcv
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from seglab.cli import main
from seglab.deploy import pipeline
from seglab.deploy.export import AdaptiveAvgPool2dAsMatmul, exportable, unexportable_operator
from seglab.deploy.preprocess import Preprocess, load_preprocess, write_preprocess
from tests.helpers.commands import ZOO_SHORT_RUN, error_line, train
from tests.test_zoo_smoke import EXTRA, TRAINS

CLASSES = ("background", "square", "disc", "triangle")
PALETTE = ((0, 0, 0), (230, 25, 75), (60, 180, 75), (0, 130, 200))


# --- a tiny graph seglab did not export: a 1x1 convolution from 3 channels to 4 classes ---


def tiny_onnx(
    path: Path, classes: int = 4, channels: int = 3, fixed=None, declared=None, **names
) -> Path:
    """An ONNX model whose logits are a 1x1 convolution of the raw pixels (no normalisation);
    `declared`: the output's channel count as its type says (default `classes`)."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(classes, channels, 1, 1)).astype("f4"), "w")
    bias = numpy_helper.from_array(rng.normal(size=classes).astype("f4"), "b")
    image, logits = names.get("input_name", "image"), names.get("output_name", "logits")
    h, w = fixed or ("H", "W")
    graph = helper.make_graph(
        [helper.make_node("Conv", [image, "w", "b"], [logits])],
        "tiny",
        [helper.make_tensor_value_info(image, TensorProto.FLOAT, ["N", channels, h, w])],
        [
            helper.make_tensor_value_info(
                logits, TensorProto.FLOAT, ["N", declared or classes, h, w]
            )
        ],
        initializer=[weight, bias],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def tiny_preprocess(**changes) -> Preprocess:
    keys = dict(
        input_name="image",
        output_name="logits",
        opset=17,
        channel_order="rgb",
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        input_size=None,
        resize=None,
        pad=None,
        slide=None,
        align_corners=False,
        num_classes=4,
        out_channels=4,
        threshold=0.5,
        classes=CLASSES,
        palette=PALETTE,
    )
    return Preprocess(**{**keys, **changes})


def tiny_pair(folder: Path, **changes) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    model = tiny_onnx(folder / "model.onnx")
    write_preprocess(tiny_preprocess(**changes), folder / "preprocess.json")
    return model, folder / "preprocess.json"


def photo(path: Path, size=(40, 56), seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


def tiny_labels(image: Path, model: Path) -> np.ndarray:
    """What the tiny graph predicts for a photo at its own size, computed without it."""
    graph = onnx.load(str(model))
    w, b = (numpy_helper.to_array(t) for t in graph.graph.initializer)
    rgb = mmcv.imread(str(image), channel_order="rgb").astype(np.float32)
    return (np.einsum("hwc,kc->khw", rgb, w[:, :, 0, 0]) + b[:, None, None]).argmax(0)


def test_infer_of_an_onnx_model_writes_what_infer_of_a_checkpoint_writes(tmp_path, capsys):
    model, _ = tiny_pair(tmp_path / "deployed")
    (tmp_path / "photos").mkdir()
    images = [photo(tmp_path / "photos" / f"p{i}.png", seed=i) for i in range(2)]
    main(["infer", f"model={model}", f"image={tmp_path / 'photos'}", f"out={tmp_path / 'out'}"])
    assert "segmented 2 image(s) with model.onnx (ONNX Runtime)" in capsys.readouterr().out
    for image in images:
        labels = np.asarray(Image.open(tmp_path / "out" / f"{image.stem}_labels.png"))
        assert labels.dtype == np.uint8 and np.array_equal(labels, tiny_labels(image, model))
        assert (tmp_path / "out" / f"{image.stem}.png").is_file()
    # again: replaces its own outputs; a file of the user's in the way is refused (evaluate's)
    main(["infer", f"model={model}", f"image={images[0]}", f"out={tmp_path / 'out'}"])
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "p0.png").write_text("the user's")
    args = ["infer", f"model={model}", f"image={images[0]}", f"out={tmp_path / 'mine'}"]
    assert "exists and seglab did not write it" in error_line(args, capsys)


# --- preprocess.json and model.onnx from someone else: one line, before anything runs ---

BAD_JSON = [
    ("[]", "holds a JSON list; expected an object"),
    ({"num_classes": "4"}, 'num_classes="4": expected a whole number from 1 to 65536'),
    ({"num_classes": -3}, "num_classes=-3: expected a whole number from 1 to 65536"),
    ({"num_classes": 10**12}, "num_classes=1000000000000: expected a whole number"),
    ({"num_classes": True}, "num_classes=true: expected a whole number"),
    ({"mean": [1, 2]}, "mean=[1, 2]: expected 3 numbers, one per channel"),
    ({"mean": [1, "2", 3]}, 'mean[1]="2": expected a number'),
    ({"std": [0, 1, 1]}, "std[0]=0: expected a number above 0"),
    ({"std": [1, -57.1, 1]}, "std[1]=-57.1: expected a number above 0"),
    ({"input_size": [100000, 32]}, "input_size[0]=100000: expected a whole number from 1"),
    ({"input_size": [-1, 32]}, "input_size[0]=-1: expected a whole number from 1 to 16384"),
    ({"input_size": "32x32"}, 'input_size="32x32": expected two whole numbers [h, w]'),
    ({"resize": {"scale": [0, 96], "keep_ratio": True}}, "resize.scale[0]=0: expected"),
    ({"resize": {"scale": [96, 96], "keep_ratio": "yes"}}, 'resize.keep_ratio="yes"'),
    ({"resize": {"scale_factor": [1e9, 1]}}, "resize.scale_factor[0]=1000000000.0: expected"),
    ({"pad": {"size_divisor": 2**40}}, "pad.size_divisor=1099511627776: expected a whole"),
    ({"slide": {"crop_size": [32, 32], "stride": [64, 8]}}, "slide.stride=[64, 8]: expected at"),
    ({"classes": ["a", "b"]}, 'classes=["a", "b"]: expected a list of num_classes=4 names'),
    ({"palette": [[0, 0, 0]] * 3}, "palette=[[0, 0, 0], [0, 0, 0], [0, 0, 0]]: expected a list"),
    ({"palette": [[0, 0, 0], [300, 0, 0], [0, 0, 0], [0, 0, 0]]}, "palette[1][0]=300: expected"),
    ({"channel_order": "\x1b[2Jrgb"}, 'channel_order="\\u001b[2Jrgb": expected rgb or bgr'),
    ({"out_channels": 3}, "out_channels=3: expected num_classes=4 (or 1 for 2 classes)"),
    ({"opset": 99}, "opset=99: expected a whole number from 7 to 30"),
    ({"format": "mmdeploy"}, "format=\"mmdeploy\": expected 'seglab-onnx/1'"),
    ({"input_name": None}, "input_name=null: expected a string"),
    ("NaN", "cannot be read as JSON (NaN is not a JSON number)"),
    ("{not json", "cannot be read as JSON"),
]


@pytest.mark.parametrize(("change", "expected"), BAD_JSON, ids=[e for _, e in BAD_JSON])
def test_a_crafted_preprocess_json_is_one_line_naming_the_key(tmp_path, capsys, change, expected):
    model, preprocess = tiny_pair(tmp_path)
    if isinstance(change, dict):
        data = {**json.loads(preprocess.read_text()), **change}
        preprocess.write_text(json.dumps(data))
    elif change == "NaN":
        data = json.loads(preprocess.read_text())
        preprocess.write_text(json.dumps(data).replace('"mean": [0.0,', '"mean": [NaN,'))
    else:
        preprocess.write_text(change)
    image = photo(tmp_path / "p.png")
    args = ["infer", f"model={model}", f"image={image}", f"out={tmp_path / 'out'}"]
    line = error_line(args, capsys)
    assert expected in line, line
    assert "\x1b" not in line
    assert not (tmp_path / "out").exists()


def test_an_oversized_preprocess_json_is_not_read(tmp_path, monkeypatch):
    from seglab.deploy import preprocess as module
    from seglab.errors import ConfigError

    _, path = tiny_pair(tmp_path)
    monkeypatch.setattr(module, "MAX_JSON_BYTES", 100)
    with pytest.raises(ConfigError, match="bytes; expected a preprocess.json of at most"):
        load_preprocess(path)


def external_data(path: Path) -> None:
    model = onnx.load(str(path))
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )


def external_constant(path: Path) -> None:
    """A Constant node whose value is to be read from a file outside the model."""
    model = onnx.load(str(path))
    value = helper.make_tensor("leak", onnx.TensorProto.UINT8, [4], [0, 0, 0, 0])
    value.ClearField("int32_data")
    value.data_location = onnx.TensorProto.EXTERNAL
    value.external_data.add(key="location", value="../../etc/hostname")
    model.graph.node.append(helper.make_node("Constant", [], ["leaked"], value=value))
    onnx.save(model, str(path))


def custom_operator(path: Path) -> None:
    model = onnx.load(str(path))
    model.graph.node[0].op_type, model.graph.node[0].domain = "Evil", "com.example.evil"
    model.opset_import.append(helper.make_opsetid("com.example.evil", 1))
    onnx.save(model, str(path))


BAD_MODELS = {
    "five classes": (
        lambda p: tiny_onnx(p, classes=5),
        "output logits is ['N', 5, 'H', 'W'], but its preprocess.json says out_channels=4",
    ),
    "five classes, unnamed": (
        lambda p: tiny_onnx(p, classes=5, declared="C"),
        "gave logits of shape [1, 5, 40, 56], but its preprocess.json says out_channels=4",
    ),
    "one channel": (lambda p: tiny_onnx(p, channels=1), "input image is ['N', 1, 'H', 'W']"),
    "fixed size": (
        lambda p: tiny_onnx(p, fixed=(32, 32)),
        "input image is ['N', 3, 32, 32], but its preprocess.json says input_size=null",
    ),
    "renamed input": (
        lambda p: tiny_onnx(p, input_name="pixels"),
        "its input is named 'pixels', but its preprocess.json says input_name='image'",
    ),
    "external weights": (external_data, "keeps weights in other files (external data)"),
    "external constant": (external_constant, "keeps weights in other files (external data)"),
    "not onnx": (lambda p: p.write_bytes(b"\x08\xff\xff\xff garbage"), "cannot be read as an"),
    "custom operator": (custom_operator, "ONNX Runtime cannot load it"),
}


@pytest.mark.parametrize("case", BAD_MODELS)
def test_a_model_that_disagrees_with_its_preprocess_json_is_refused(tmp_path, capsys, case):
    model, _ = tiny_pair(tmp_path)
    make, expected = BAD_MODELS[case]
    make(model)
    image = photo(tmp_path / "p.png")
    args = ["infer", f"model={model}", f"image={image}", f"out={tmp_path / 'out'}"]
    line = error_line(args, capsys)
    assert expected in line, line
    assert not list(tmp_path.glob("out/*")), "nothing written"


def test_a_fixed_size_graph_refuses_other_sizes_in_one_line(tmp_path, capsys):
    tiny_onnx(tmp_path / "model.onnx", fixed=(32, 32))
    write_preprocess(tiny_preprocess(input_size=(32, 32)), tmp_path / "preprocess.json")
    image = photo(tmp_path / "p.png", size=(40, 56))
    args = ["infer", f"model={tmp_path / 'model.onnx'}", f"image={image}", "out=out"]
    assert "takes 32x32 inputs only (fixed at export" in error_line(args, capsys)


def test_a_gpu_onnx_runtime_lacks_is_one_line(tmp_path, capsys):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    model, _ = tiny_pair(tmp_path)
    args = ["infer", f"model={model}", f"image={photo(tmp_path / 'p.png')}", "out=o", "device=cuda"]
    assert "has no CUDAExecutionProvider" in error_line(args, capsys)


def test_preprocess_json_reads_back_what_was_written(tmp_path):
    pre = tiny_preprocess(
        resize={
            "scale": (96, 64),
            "scale_factor": None,
            "keep_ratio": True,
            "interpolation": "bilinear",
        },
        pad={"size_divisor": 32, "size": None, "value": 0.0},
        slide={"crop_size": (32, 32), "stride": (21, 21)},
        input_size=(32, 32),
        record={"notes": ["a note"], "parity": {"pixel_agreement": 1.0}},
    )
    write_preprocess(pre, tmp_path / "preprocess.json")
    back = load_preprocess(tmp_path / "preprocess.json")
    assert back == pre and back.record == pre.record


# --- the image side against mmseg's, mmcv's and torch's own code ---


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize(
    ("size_in", "size_out"), [((5, 7), (13, 4)), ((16, 16), (7, 9)), ((3, 1), (1, 6))]
)
def test_the_final_resize_is_torchs_bilinear(align_corners, size_in, size_out):
    logits = np.random.default_rng(0).normal(size=(3, *size_in)).astype(np.float32)
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(logits)[None], size=size_out, mode="bilinear", align_corners=align_corners
    )[0].numpy()
    assert np.abs(pipeline.bilinear(logits, size_out, align_corners) - expected).max() < 1e-5


@pytest.mark.parametrize(
    "resize",
    [
        {"scale": (96, 96), "keep_ratio": True},
        {"scale": (2048, 512), "keep_ratio": True},
        {"scale": (50, 30), "keep_ratio": False},
        {"scale_factor": (1.5, 1.5), "keep_ratio": True},
    ],
)
def test_the_resize_is_mmcvs_transform(resize):
    from mmcv.transforms import Resize

    image = np.random.default_rng(0).integers(0, 256, (40, 57, 3), dtype=np.uint8)
    expected = Resize(**resize)(dict(img=image, img_shape=image.shape[:2]))["img"]
    ours = pipeline.resized(
        image, {"scale": None, "scale_factor": None, "interpolation": "bilinear", **resize}
    )
    assert np.array_equal(ours, expected)


@pytest.mark.parametrize(
    ("size", "crop", "stride"), [((70, 45), (32, 32), (21, 21)), ((20, 50), (32, 32), (16, 16))]
)
def test_the_sliding_window_is_mmsegs(size, crop, stride):
    from mmengine.config import ConfigDict
    from mmseg.models.segmentors import EncoderDecoder

    image = np.random.default_rng(0).normal(size=(3, *size)).astype(np.float32)
    weight = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)

    def network(batch):  # position-dependent, so that a misplaced window shows
        h, w = batch.shape[2:]
        ramp = np.arange(h * w, dtype=np.float32).reshape(1, 1, h, w) / (h * w)
        return np.einsum("nchw,kc->nkhw", batch, weight) + ramp

    stub = SimpleNamespace(
        test_cfg=ConfigDict(crop_size=crop, stride=stride),
        out_channels=4,
        encode_decode=lambda x, metas: torch.from_numpy(network(x.numpy())),
    )
    expected = EncoderDecoder.slide_inference(stub, torch.from_numpy(image)[None], [{}])[0]
    pre = tiny_preprocess(slide={"crop_size": crop, "stride": stride})
    assert np.abs(pipeline.slide(network, image, pre) - expected.numpy()).max() < 1e-5


def test_padding_is_mmsegs_after_normalising():
    from mmseg.utils import stack_batch

    image = np.random.default_rng(0).uniform(0, 255, (3, 37, 50)).astype(np.float32)
    mean, std = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])
    pre = tiny_preprocess(
        mean=tuple(mean), std=tuple(std), pad={"size_divisor": 32, "size": None, "value": 0.0}
    )
    ours, (bottom, right) = pipeline.padded(image, pre)
    normalised = (
        torch.from_numpy(image) - torch.tensor(mean)[:, None, None].float()
    ) / torch.tensor(std)[:, None, None].float()
    expected, _ = stack_batch([normalised], size_divisor=32, pad_val=0)
    ours_normalised = (ours - mean[:, None, None]) / std[:, None, None]
    assert (bottom, right) == (27, 14) and ours.shape == (3, 64, 64)
    assert np.abs(ours_normalised - expected[0].numpy()).max() < 1e-4


@pytest.mark.parametrize(("size", "out"), [((7, 9), (3, 2)), ((6, 6), (6, 6)), ((13, 5), (1, 1))])
def test_the_adaptive_pool_exported_is_torchs(size, out):
    x = torch.randn(2, 3, *size)
    pool = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(out))
    expected = pool(x)
    assert exportable(pool) == 1 and isinstance(pool[0], AdaptiveAvgPool2dAsMatmul)
    assert (pool(x) - expected).abs().max() < 1e-5


def test_an_operator_of_mmcv_ops_is_found():
    from mmcv.ops import PSAMask

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), PSAMask("collect", (3, 3)))
    assert unexportable_operator(model) == ("1", "PSAMask")
    assert unexportable_operator(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1))) is None


# --- seglab deploy's options: one line before the model is built ---


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("format=tensorrt", "format=tensorrt: expected onnx"),
        ("tolerance=0", "tolerance=0: expected a number above 0, at most 1"),
        ("agreement=high", "agreement=high: expected a number above 0"),
        ("tolerence=0.01", "tolerence=0.01: no option tolerence; did you mean tolerance?"),
        ("checkpoint=missing.pth", "checkpoint='missing.pth' is not a file"),
        ("images=notes.txt", "images='notes.txt': not an image; expected one of .jpg"),
    ],
)
def test_deploy_refuses_options_it_cannot_use(tmp_path, capsys, option, expected):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.py").write_text("model = dict(type='EncoderDecoder')\n")
    Path("notes.txt").write_text("not an image\n")
    assert expected in error_line(["deploy", str(run), option], capsys)
    assert not (run / "deploy").exists()


def test_deploy_needs_a_run_directory(tmp_path, capsys):
    assert "has no config.py" in error_line(["deploy", str(tmp_path)], capsys)
    line = error_line(["deploy"], capsys)
    assert "expected seglab deploy RUN_DIR" in line


# --- exported, checked, served: the demo run and zoo families trained here ---


def deploy(run: Path, out: Path, capsys, *options: str) -> dict:
    capsys.readouterr()
    main(["deploy", str(run), f"out={out}", *options])
    printed = capsys.readouterr().out
    assert "parity on 4 image(s) of the run's validation set: max |logit difference|" in printed
    return json.loads((out / "preprocess.json").read_text())


def same_masks(run: Path, model: Path, images: Path, capsys) -> float:
    """Infer of the checkpoint and of the exported model on the same images: the share of
    pixels whose class agrees (and the overlays drawn from them)."""
    main(["infer", f"checkpoint={run}", f"image={images}", "out=from_checkpoint"])
    main(["infer", f"model={model}", f"image={images}", "out=from_onnx"])
    agree = total = 0
    for labels in sorted(Path("from_checkpoint").glob("*_labels.png")):
        a, b = (
            np.asarray(Image.open(Path(d) / labels.name)) for d in ("from_checkpoint", "from_onnx")
        )
        agree, total = agree + int((a == b).sum()), total + a.size
    return agree / total


def validation_folder(run: Path) -> Path:
    from mmengine.config import Config

    val = Config.fromfile(str(run / "config.py")).val_dataloader.dataset
    return Path(val.data_root) / val.data_prefix.img_path


@pytest.mark.train
def test_the_demo_run_deploys_and_its_masks_are_the_checkpoints(trained_run, capsys):
    data = deploy(trained_run, Path("deployed"), capsys)
    assert data["exporter"].startswith("torch.onnx.export(dynamo=True)")
    assert data["input_size"] is None and data["channel_order"] == "rgb"
    assert data["resize"]["scale"] == [96, 96] and data["resize"]["keep_ratio"] is True
    assert data["classes"] == list(CLASSES) and data["num_classes"] == 4
    parity = data["parity"]
    assert parity["relative_logit_diff"] <= 1e-3 and parity["pixel_agreement"] >= 0.999
    assert any("checked at 2x3x" in note for note in data["notes"])
    # the validation images and one of another size and shape, resized from one of them
    images = Path("images")
    images.mkdir()
    for path in validation_folder(trained_run).glob("*.jpg"):
        (images / path.name).write_bytes(path.read_bytes())
        first = path
    Image.open(first).resize((112, 80)).save(images / "wide.png")
    agreement = same_masks(trained_run, Path("deployed/model.onnx"), images, capsys)
    print(f"demo: infer of model.onnx agrees with infer of the checkpoint on {agreement:.4%}")
    assert agreement >= 0.999


@pytest.mark.train
def test_a_graph_past_the_tolerance_is_not_left_as_model_onnx(trained_run, capsys):
    out = Path("deployed")
    line = error_line(["deploy", str(trained_run), f"out={out}", "tolerance=1e-12"], capsys, True)
    assert "the exported model is not the PyTorch model: its logits differ" in line
    assert not (out / "model.onnx").exists() and not (out / "preprocess.json").exists()
    kept = json.loads((out / "preprocess.json.partial").read_text())
    assert (out / "model.onnx.partial").is_file() and kept["parity"]["tolerance"] == 1e-12


@pytest.mark.train
def test_a_graph_that_fails_at_another_size_is_exported_at_a_fixed_one(
    trained_run, capsys, monkeypatch
):
    """Without the pooling swap, torch.export fixes the demo's pyramid pooling at the traced
    size: the probe at another size fails, and the graph is exported again at 96 x 96."""
    from seglab.deploy import deployment

    monkeypatch.setattr(deployment.export, "exportable", lambda model: 0)
    data = deploy(trained_run, Path("deployed"), capsys)
    assert data["input_size"] == [96, 96], data["notes"]
    assert any(
        n.startswith("input size fixed at 96x96: exported with a free size") for n in data["notes"]
    )
    assert data["parity"]["pixel_agreement"] >= 0.999
    image = photo(Path("wide.png"), size=(80, 112))
    args = ["infer", "model=deployed", f"image={image}", "out=out"]
    assert "takes 96x96 inputs only (fixed at export" in error_line(args, capsys, trained=True)


@pytest.mark.train
def test_where_the_dynamo_exporter_fails_the_torchscript_one_is_used(
    trained_run, capsys, monkeypatch
):
    exporter = torch.onnx.export

    def no_dynamo(*args, dynamo=True, **kwargs):
        if dynamo:
            raise RuntimeError("dynamo export failed here")
        return exporter(*args, dynamo=dynamo, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", no_dynamo)
    data = deploy(trained_run, Path("deployed"), capsys)
    assert data["exporter"].startswith("torch.onnx.export(dynamo=False)") and data["opset"] == 17
    assert data["parity"]["relative_logit_diff"] <= 1e-3


# Six families of different kinds: a plain FCN, pyramid pooling (PSPNet), atrous pyramid and
# decoder (DeepLabV3+), a transformer (SegFormer), a two-branch real-time net (BiSeNetV2), and
# a U-Net tested with a sliding window (its graph fixed at the crop). UPerNet is the demo's.
# PSPNet (its pooling exported as matrix products) runs in `make test`, the other five in
# `make test-extended` (each a training and an export: half a minute to two on 2 cores)
IN_MAKE_TEST = ("pspnet",)
FAMILIES = [
    f if f in IN_MAKE_TEST else pytest.param(f, marks=pytest.mark.extended)
    for f in ["fcn", "pspnet", "deeplabv3plus", "segformer", "bisenetv2", "unet"]
]
# upstream's U-Net windows are 42 px apart; 21 fit the 32 px crop
SLIDE = {"unet": ["model.test_cfg.stride=[21,21]"]}


def zoo_run(family: str) -> Path:
    experiment = f"experiment={family}/{TRAINS[family]}"
    checkpoint = "default_hooks.checkpoint.interval=2"  # ZOO_SHORT_RUN keeps none
    extra = [*EXTRA.get(family, []), *SLIDE.get(family, [])]
    return train([experiment, *ZOO_SHORT_RUN, "pretrained=false", checkpoint, *extra])


@pytest.mark.train
@pytest.mark.slow  # a training and an export per family, as test_zoo_smoke's are slow
@pytest.mark.parametrize("family", FAMILIES)
def test_a_zoo_family_deploys_and_serves_the_checkpoints_masks(family, capsys):
    run = zoo_run(family)
    data = deploy(run, Path("deployed"), capsys)
    parity = data["parity"]
    print(f"{family}: {data['exporter']}, {parity}, notes {data['notes']}")
    assert parity["relative_logit_diff"] <= 1e-3 and parity["pixel_agreement"] >= 0.999
    if family in SLIDE:
        assert data["input_size"] == [32, 32] and data["slide"]["stride"] == [21, 21]
    else:
        assert data["input_size"] is None
    agreement = same_masks(run, Path("deployed/model.onnx"), validation_folder(run), capsys)
    print(f"{family}: infer of model.onnx agrees with infer of the checkpoint on {agreement:.4%}")
    assert agreement >= 0.999


@pytest.mark.train
def test_a_model_with_mmcv_ops_is_refused_before_it_is_exported(capsys):
    run = zoo_run("ccnet")
    line = error_line(["deploy", str(run), "out=deployed"], capsys, trained=True)
    assert "model.decode_head.cca: CrissCrossAttention is a compiled operator of mmcv.ops" in line
    assert not list(Path("deployed").glob("model.onnx*"))
