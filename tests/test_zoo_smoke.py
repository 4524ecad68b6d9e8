"""One upstream config per family of the zoo builds its model, trains 2 iterations on the CPU,
from scratch, through seglab, on the synthetic data, and validates; a family that needs what
this machine lacks is refused in one line before training."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import pytest
import torch

from seglab.checks.requirements import PACKAGES
from tests.helpers.commands import ZOO_SHORT_RUN, error_line, train

EXPERIMENTS = Path(__file__).parents[1] / "experiments"

# Every family's run: the synthetic data (64 px images) in 32 px crops (a multiple of 32: every
# model but mobilenet_v3's takes them), 2 iterations of batch 2 (upstream's warmups and
# milestones fitted into them by seglab), a validation at the end (the model's own test_cfg on
# the 4 validation images), a loss logged at each iteration and no
# checkpoint (writing one costs up to 10 s for the large ViTs). No pretrained weights (there is
# no network): `pretrained=false`, but for SAN (below), which needs two of its init_cfgs.
SHARED = ZOO_SHORT_RUN

# One config per family that trains here, the cheapest: the family's smallest model by its name
# (r18 < r50 < s101, hr18s, mit-b0, vit-t, mscan-t, ...; r50 for Mask2Former, whose swin-t is
# larger), without ImageNet pre-training where a variant has none, no fp16 (AmpOptimWrapper)
# config; among data sets any (the synthetic one replaces it).
TRAINS = {
    "ann": "ann_r50-d8_4xb4-80k_ade20k-512x512",
    "apcnet": "apcnet_r50-d8_4xb4-80k_ade20k-512x512",
    "beit": "beit-base_upernet_8xb2-160k_ade20k-640x640",
    "bisenetv1": "bisenetv1_r18-d32_4xb4-160k_cityscapes-1024x1024",
    "bisenetv2": "bisenetv2_fcn_4xb4-160k_cityscapes-1024x1024",
    "ccnet": "ccnet_r50-d8_4xb4-80k_ade20k-512x512",
    "cgnet": "cgnet_fcn_4xb8-60k_cityscapes-512x1024",
    "danet": "danet_r50-d8_4xb4-80k_ade20k-512x512",
    "ddrnet": "ddrnet_23-slim_in1k-pre_2xb6-120k_cityscapes-1024x1024",
    "deeplabv3": "deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024",
    "deeplabv3plus": "deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024",
    "dmnet": "dmnet_r50-d8_4xb4-80k_ade20k-512x512",
    "dnlnet": "dnl_r50-d8_4xb4-80k_ade20k-512x512",
    "dpt": "dpt_vit-b16_8xb2-160k_ade20k-512x512",
    "dsdl": "voc",
    "emanet": "emanet_r50-d8_4xb2-80k_cityscapes-512x1024",
    "encnet": "encnet_r50-d8_4xb4-80k_ade20k-512x512",
    "erfnet": "erfnet_fcn_4xb4-160k_cityscapes-512x1024",
    "fastfcn": "fastfcn_r50-d32_jpu_psp_4xb4-80k_ade20k-512x512",
    "fastscnn": "fast_scnn_8xb4-160k_cityscapes-512x1024",
    "fcn": "fcn_r18-d8_4xb2-80k_cityscapes-512x1024",
    "gcnet": "gcnet_r50-d8_4xb4-80k_ade20k-512x512",
    "hrnet": "fcn_hr18s_4xb4-80k_ade20k-512x512",
    "icnet": "icnet_r18-d8_4xb2-80k_cityscapes-832x832",
    "isanet": "isanet_r50-d8_4xb4-80k_ade20k-512x512",
    "knet": "knet-s3_r50-d8_fcn_8xb2-adamw-80k_ade20k-512x512",
    # both mae configs say amp; upstream's optim_wrapper is OptimWrapper (its `fp16` key is
    # mmcv 1.x's, which mmengine does not read)
    "mae": "mae-base_upernet_8xb2-amp-160k_ade20k-512x512",
    "mask2former": "mask2former_r50_8xb2-160k_ade20k-512x512",
    "maskformer": "maskformer_r50-d32_8xb2-160k_ade20k-512x512",
    "mobilenet_v2": "mobilenet-v2-d8_fcn_4xb4-160k_ade20k-512x512",
    "mobilenet_v3": "mobilenet-v3-d8-scratch-s_lraspp_4xb4-320k_cityscapes-512x1024",
    "nonlocal_net": "nonlocal_r50-d8_4xb4-80k_ade20k-512x512",
    "ocrnet": "ocrnet_hr18s_4xb4-80k_ade20k-512x512",
    "pidnet": "pidnet-s_2xb6-120k_1024x1024-cityscapes",
    "point_rend": "pointrend_r50_4xb4-160k_ade20k-512x512",
    "psanet": "psanet_r50-d8_4xb4-80k_ade20k-512x512",
    "pspnet": "pspnet_r18-d8_4xb2-80k_cityscapes-512x1024",
    "resnest": "resnest_s101-d8_fcn_4xb4-160k_ade20k-512x512",
    "san": "san-vit-b16_voc12aug-640x640",
    "segformer": "segformer_mit-b0_8xb2-160k_ade20k-512x512",
    "segmenter": "segmenter_vit-t_mask_8xb1-160k_ade20k-512x512",
    "segnext": "segnext_mscan-t_1xb16-adamw-160k_ade20k-512x512",
    "sem_fpn": "fpn_r50_4xb4-160k_ade20k-512x512",
    "setr": "setr_vit-l_naive_8xb2-160k_ade20k-512x512",
    "stdc": "stdc1_4xb12-80k_cityscapes-512x1024",
    "swin": "swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512",
    "twins": "twins_pcpvt-s_fpn_fpnhead_8xb4-80k_ade20k-512x512",
    "unet": "unet-s5-d16_fcn_4xb4-40k_drive-64x64",
    "upernet": "upernet_r18_4xb4-80k_ade20k-512x512",
    "vit": "vit_deit-s16_upernet_8xb2-80k_ade20k-512x512",
}

# Upstream's per-class loss weights are literals for its data set's classes (19 Cityscapes
# classes; 150 ADE20K classes and a no-object weight of 0.1): 4 classes here.
NO_CLASS_WEIGHT = "class_weight=null"
MASK_CLASS_WEIGHT = "class_weight=[1.0,1.0,1.0,1.0,0.1]"
# BEiT's relative position bias is sized for img_size: its input has that size.
IMG_SIZE_IS_CROP = "model.backbone.img_size=${dataset.crop_size}"
# SAN from scratch, around two bugs of mmseg 1.2.2 that only CLIP's weights hide: its text
# encoder leaves positional_embedding and text_projection as torch.empty (NaN on the first
# iteration) unless a Pretrained_Part checkpoint fills them, and SideAdapterCLIPHead's
# init_weights calls nn.Module's (missing) init_weights unless its init_cfg is a Pretrained_Part
# checkpoint too. This file gives the text encoder those two tensors, drawn as CLIP draws them
# (CLIP ViT-B/16's text widths), and nothing else.
SAN_INIT = "san_init.pth"


def write_san_init(path: str, context_length: int = 77, width: int = 512) -> None:
    torch.save(
        {
            "text_encoder.positional_embedding": torch.randn(context_length, width) * 0.01,
            "text_encoder.text_projection": torch.randn(width, width) * width**-0.5,
        },
        path,
    )


# Upstream's sliding windows follow the crop (32 px here) and keep their strides (341, 426,
# 42 px): seglab refuses the stride in one line, whose suggested stride the test then applies.
SLIDING_WINDOW = {"beit", "mae", "setr", "unet"}

# What a family needs beyond SHARED, and why.
EXTRA: dict[str, list[str]] = {
    "beit": [IMG_SIZE_IS_CROP],
    "cgnet": [f"model.decode_head.loss_decode.{NO_CLASS_WEIGHT}"],
    "ddrnet": [f"model.decode_head.loss_decode.{i}.{NO_CLASS_WEIGHT}" for i in (0, 1)],
    # upstream's dsdl configs define their data sets inline (DSDLSegDataset over a DSDL export
    # of VOC): the train set becomes the synthetic one, read by BaseSegDataset
    "dsdl": [
        "dataset.num_classes=4",
        *(
            override
            for loader, split in (("train", "training"), ("val", "validation"))
            for override in (
                f"{loader}_dataloader.dataset.type=BaseSegDataset",
                f"{loader}_dataloader.dataset.data_root=${{dataset.data_root}}",
                f"~{loader}_dataloader.dataset.ann_file",
                f"{loader}_dataloader.dataset.data_prefix.img_path=images/{split}",
                f"{loader}_dataloader.dataset.data_prefix.seg_map_path=annotations/{split}",
            )
        ),
    ],
    "mae": [IMG_SIZE_IS_CROP],
    "mask2former": [f"model.decode_head.loss_cls.{MASK_CLASS_WEIGHT}"],
    "maskformer": [f"model.decode_head.loss_cls.{MASK_CLASS_WEIGHT}"],
    # LRASPPHead average-pools the 1/8 feature map with a 49x49 kernel: 392 px at least
    # (the 64 px images are padded to the crop in training, resized to it for validation)
    "mobilenet_v3": ["dataset.crop_size=[392,392]", "dataset.scale=[392,392]"],
    "pidnet": [f"model.decode_head.loss_decode.{i}.{NO_CLASS_WEIGHT}" for i in (0, 1, 3)],
    # SAN names its classes with its text encoder's vocabulary; upstream's VOC config keeps the
    # 171 COCO-Stuff loss weights of its base (it evaluates COCO-Stuff weights) and pads each
    # batch to a multiple of 640 px
    "san": [
        "dataset.num_classes=4",
        # upstream names VOC's 20 classes in its validation set
        "val_dataloader.dataset.metainfo={classes:${dataset.classes},palette:${dataset.palette}}",
        "model.text_encoder.dataset_name=null",
        "++model.text_encoder.vocabulary=${dataset.classes}",
        f"model.decode_head.loss_decode.0.{MASK_CLASS_WEIGHT}",
        "data_preprocessor.size_divisor=32",
        f"++model.text_encoder.init_cfg={{type:Pretrained_Part,checkpoint:{SAN_INIT}}}",
        f"++model.decode_head.init_cfg={{type:Pretrained_Part,checkpoint:{SAN_INIT}}}",
    ],
    # upstream's upernet_r18 configs give the data preprocessor neither a size nor a
    # size_divisor (the r50 ones set size=crop_size): mmseg asserts one of them in training
    "upernet": ["++data_preprocessor.size=${dataset.crop_size}"],
}

# Configs that cannot train on this machine, run as upstream wrote them, and what their one-line
# refusal names: the three families none of whose configs trains here (mmpretrain's models
# import torchvision, for which no registry here has a CPU build for torch 2.13; VPD's backbone
# is Stable Diffusion's `ldm`), and two single configs of families that train above.
REFUSED = {
    "convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512": "torchvision",
    "poolformer/fpn_poolformer_s12_8xb4-40k_ade20k-512x512": "torchvision",
    "vpd/vpd_sd_4xb8-25k_nyu-512x512": "ldm",
    # change detection on LEVIR-CD reads its image pairs with GDAL
    "swin/swin-tiny-patch4-window7_upernet_1xb8-20k_levir-256x256": "GDAL (osgeo)",
    # fp16 (AmpOptimWrapper)
    "bisenetv2/bisenetv2_fcn_4xb4-amp-160k_cityscapes-1024x1024": "a GPU",
}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Runs this small spend most of their time in many small ops, where torch's second thread
    costs more than it gives, and far more on a shared 2-core machine: all families took 310 s
    with one thread and 746 s with two while another process kept one core busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_family_is_here_once():
    families = {p.name for p in EXPERIMENTS.iterdir() if p.is_dir()}
    refused = {e.split("/")[0] for e in REFUSED} - TRAINS.keys()
    assert len(families) == 53
    assert TRAINS.keys() | refused == families and refused == {"convnext", "poolformer", "vpd"}
    for experiment in [*(f"{f}/{n}" for f, n in TRAINS.items()), *REFUSED]:
        assert (EXPERIMENTS / f"{experiment}.yaml").is_file(), experiment


# the families whose two iterations take half a minute (ViT-B/L backbones, and DSDL's data set
# reading): `make test-extended` trains them, so that `make test` stays within 35 minutes
LARGEST = {"beit", "dsdl", "mae", "setr"}


@pytest.mark.train
@pytest.mark.slow
@pytest.mark.parametrize(
    "family",
    [pytest.param(f, marks=pytest.mark.extended) if f in LARGEST else f for f in sorted(TRAINS)],
)
def test_family_trains_two_iterations(family, capsys):
    if family == "san":
        write_san_init(SAN_INIT)
    weights_off = "++model.pretrained=null" if family == "san" else "pretrained=false"
    experiment = f"experiment={family}/{TRAINS[family]}"
    args = [experiment, *SHARED, weights_off, *EXTRA.get(family, [])]
    if family in SLIDING_WINDOW:  # the refusal's suggestion, applied as it is written
        line = error_line(args, capsys)
        assert "model.test_cfg.stride=" in line and "larger than the sliding window" in line
        args.append(re.findall(r"model\.test_cfg\.stride=\[\d+,\d+\]", line)[-1])
    run_dir = train(args)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["iter"] == 2 and 0 <= metrics["mIoU"] <= 100, metrics
    (scalars,) = run_dir.glob("*/vis_data/scalars.json")
    records = [json.loads(line) for line in scalars.read_text().splitlines()]
    logged = [r for r in records if "loss" in r]
    assert [r["iter"] for r in logged] == [1, 2]
    # (the step of a validation record is the epoch where a config's log_processor says so)
    assert len([r for r in records if "mIoU" in r]) == 1, "validated once, at the end"
    assert all(math.isfinite(r["loss"]) for r in logged), logged


def available(what: str) -> bool:
    if what == "a GPU":
        return torch.cuda.is_available()
    return importlib.util.find_spec(PACKAGES[what][0]) is not None


@pytest.mark.parametrize("experiment", sorted(REFUSED))
def test_config_needing_what_is_missing_is_refused_in_one_line(experiment, capsys):
    missing = REFUSED[experiment]
    if available(missing):
        pytest.skip(f"{missing} is available here")
    line = error_line([f"experiment={experiment}"], capsys)  # exit code 2, one line, no checkpoint
    assert f" needs {missing}" in line
    assert not list(Path.cwd().glob("outputs/runs/*/*/*.log")), "no training may start"
