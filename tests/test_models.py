"""The small models build from the converted config and run a forward pass on the CPU."""

from __future__ import annotations

import pytest
import torch
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

from seglab.config.convert import export_config


@pytest.mark.parametrize("model", ["upernet_r18-tiny", "fcn_unet-tiny", "segformer_mit-b0"])
def test_small_model_forward(model):
    register_all_modules()
    mm = export_config([f"model={model}", "dataset=synthetic", "norm_cfg.type=BN"])
    net = MODELS.build(mm.model)
    net.init_weights()
    net.eval()
    with torch.no_grad():
        logits = net(torch.rand(2, 3, 64, 64), mode="tensor")
    assert logits.shape[:2] == (2, 4)
    assert torch.isfinite(logits).all()
