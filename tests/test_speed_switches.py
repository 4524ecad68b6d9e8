"""The speed switches (seglab/config/speed.py): precision, channels_last, compile and loader.*.

What runs on a CPU is trained and compared with fp32 on the same seed; mixed precision through
mmengine needs a GPU and is refused here in one line, so bf16's effect on the loss is measured
with torch's own CPU autocast on the demo model.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from seglab.config.convert import export_config, write_config
from seglab.run.hooks import CHANNELS_LAST_LOG
from tests.helpers.commands import SMALL_SYNTHETIC, error_line, train

DEMO = ["experiment=demo", *SMALL_SYNTHETIC]
ITERS = 3
# the first iterations' losses of a switched run against fp32's, relative: channels_last and
# compile reorder float sums (oneDNN's NHWC kernels, inductor's fused ones), nothing more
SAME_TRAINING = 1e-3
# bf16 keeps 8 bits of mantissa (relative steps of 2**-8 = 0.4 %) in the convolutions
BF16_TRAINING = 1e-2
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")


def test_precision_is_mmsegs_amp_optim_wrapper_in_the_exported_file(tmp_path):
    bf16 = export_config(
        [*DEMO, "precision=bf16", "channels_last=true", "compile=true"], reference=False
    )
    assert bf16.optim_wrapper.type == "AmpOptimWrapper"
    assert (bf16.optim_wrapper.dtype, bf16.optim_wrapper.loss_scale) == ("bfloat16", 1.0)
    write_config(bf16, tmp_path / "config.py", header="test")
    text = (tmp_path / "config.py").read_text()
    assert "AmpOptimWrapper" in text and "bfloat16" in text
    # the runtime switches are seglab's: not in the file plain mmseg runs
    for key in ("precision", "channels_last", "compile", "compile_mode", "loader", "amp"):
        assert key not in bf16
    for switch in (["precision=fp16"], ["amp=true"]):  # amp=true: the older name of fp16
        fp16 = export_config([*DEMO, *switch], reference=False)
        assert (fp16.optim_wrapper.type, fp16.optim_wrapper.loss_scale) == (
            "AmpOptimWrapper",
            "dynamic",
        )
        assert "dtype" not in fp16.optim_wrapper


def test_loader_keys_reach_every_dataloader():
    cfg = export_config(
        ["experiment=demo", "loader.num_workers=0", "loader.pin_memory=true"], reference=False
    )
    for name in ("train_dataloader", "val_dataloader", "test_dataloader"):
        loader = cfg[name]
        # no workers: upstream's persistent workers are turned off, as torch requires
        assert (loader.num_workers, loader.pin_memory, loader.persistent_workers) == (
            0,
            True,
            False,
        )
    # null keeps each loader's own (upstream's) values
    default = export_config(["experiment=demo"], reference=False)
    assert (
        default.train_dataloader.num_workers == 2 and "pin_memory" not in default.train_dataloader
    )


@pytest.mark.parametrize(
    "switch, expected",
    [
        ("precision=fp8", "precision='fp8': expected one of fp32, fp16, bf16"),
        ("compile_mode=fast", "compile_mode='fast': expected one of default, reduce-overhead"),
    ],
)
def test_a_bad_switch_value_is_one_line(switch, expected, capsys):
    assert expected in error_line([*DEMO, switch], capsys)


@no_gpu
def test_bf16_without_a_gpu_stops_before_training(capsys):
    # mmengine 0.10's AmpOptimWrapper asserts a GPU when it is built: a traceback otherwise
    # (amp=true: tests/test_bad_input.py)
    line = error_line([*DEMO, "precision=bf16"], capsys)
    assert line == (
        "seglab: error: precision=bf16: mixed precision needs a GPU (mmengine's "
        "AmpOptimWrapper); this machine has none, so train with precision=fp32"
    )


def test_compile_without_a_compiler_stops_before_training(monkeypatch, capsys):
    # inductor's own setting of the compilers it looks for ($CXX sets it when torch starts)
    from torch._inductor import config as inductor_config

    if torch.cuda.is_available():
        pytest.skip("on a GPU inductor needs triton, not a C++ compiler")
    monkeypatch.setattr(inductor_config.cpp, "cxx", (None, "/nonexistent/g++"))
    line = error_line([*DEMO, "compile=true"], capsys)
    assert line.startswith("seglab: error: compile=true: torch.compile's inductor backend needs")


def losses(run_dir: Path) -> list[float]:
    """The training loss of each iteration, from the run's mmengine scalars."""
    (scalars,) = run_dir.glob("*/vis_data/scalars.json")
    rows = [json.loads(line) for line in scalars.read_text().splitlines()]
    return [row["loss"] for row in rows if "loss" in row]


FEW = [
    *DEMO,
    f"train_cfg.max_iters={ITERS}",
    # one logged loss per iteration, no validation or checkpoint: only the training steps
    f"train_cfg.val_interval={ITERS + 1}",
    f"default_hooks.checkpoint.interval={ITERS + 1}",
    "default_hooks.logger.interval=1",
    # dropout draws its mask in memory order (and inductor with its own generator), so the
    # switches would drop other pixels from the first step on: alike in law, not in value
    "model.decode_head.dropout_ratio=0",
    "model.auxiliary_head.dropout_ratio=0",
]


def trains_as_fp32(switch: str, logged: str) -> None:
    """The run with `switch` logs `logged` and the fp32 run's first losses, within
    SAME_TRAINING."""
    fp32 = losses(train(FEW))
    assert len(fp32) == ITERS
    run_dir = train([*FEW, switch])
    assert losses(run_dir) == pytest.approx(fp32, rel=SAME_TRAINING)
    (log,) = run_dir.glob("*/*.log")
    assert logged in log.read_text()


@pytest.mark.train
def test_channels_last_trains_as_fp32_does():
    trains_as_fp32("channels_last=true", CHANNELS_LAST_LOG)


@pytest.mark.train
@pytest.mark.slow
@pytest.mark.compile  # inductor compiles the training step's C++ kernels: 10 minutes on 2 cores
def test_compile_trains_as_fp32_does():
    trains_as_fp32("compile=true", 'Model has been "compiled"')  # mmengine's Runner says so


def test_bf16_autocast_trains_the_demo_model_as_fp32_does():
    """bf16 through torch's CPU autocast, as mmengine's AmpOptimWrapper would run it on a GPU
    (autocast around the forward and loss, fp32 weights and optimizer)."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import DefaultScope
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    cfg = export_config(DEMO, reference=False)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 64, 64, generator=generator)
    labels = (images.mean(dim=1, keepdim=True) * cfg.model.decode_head.num_classes).long()
    samples = [
        SegDataSample(
            gt_sem_seg=PixelData(data=label),
            metainfo=dict(img_shape=(64, 64), pad_shape=(64, 64)),
        )
        for label in labels
    ]

    def first_losses(dtype: torch.dtype | None) -> list[float]:
        torch.manual_seed(0)
        with DefaultScope.overwrite_default_scope("mmseg"):
            model = revert_sync_batchnorm(MODELS.build(copy.deepcopy(cfg.model))).train()
        model.init_weights()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        found = []
        for _ in range(ITERS):
            with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = sum(v for k, v in model.loss(images, samples).items() if "loss" in k)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            found.append(loss.item())
        return found

    fp32, bf16 = first_losses(None), first_losses(torch.bfloat16)
    assert bf16 == pytest.approx(fp32, rel=BF16_TRAINING)
    assert bf16 != fp32  # autocast did run the convolutions in bf16
