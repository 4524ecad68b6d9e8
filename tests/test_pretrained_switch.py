"""`pretrained=false` turns off every pretrained weights file a model names, whatever the key,
and every refusal about weights suggests an override that, applied, trains."""

from __future__ import annotations

import multiprocessing
import re
from concurrent.futures import ProcessPoolExecutor

import pytest
from mmengine.config import Config

from seglab.config.convert import export_config
from seglab.config.parity import UPSTREAM_CONFIGS
from seglab.config.pretrained import turn_off_weights, weight_sources
from tests.helpers.commands import SMALL_SYNTHETIC, error_line, train


def _sources(model: dict) -> list[tuple[str, str]]:
    return list(weight_sources(Config(dict(model=model))))


@pytest.mark.parametrize(
    "experiment",
    [
        "experiment=segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512",  # init_cfg Pretrained
        "experiment=deeplabv3plus/deeplabv3plus_r50-d8_4xb4-80k_ade20k-512x512",  # pretrained
        "experiment=twins/twins_pcpvt-b_uperhead_8xb2-160k_ade20k-512x512",  # both kinds
        "experiment=san/san-vit-b16_coco-stuff164k-640x640",  # Pretrained_Part, a CLIP model
    ],
)
def test_the_switch_leaves_no_weights_file_in_the_export(experiment):
    assert _sources(export_config([experiment]).to_dict()["model"]), "weights to turn off"
    model = export_config([experiment, "pretrained=false"]).to_dict()["model"]
    assert _sources(model) == []


def test_an_init_cfg_list_keeps_what_loads_no_weights():
    model = {
        "backbone": {
            "init_cfg": [
                {"type": "Kaiming", "layer": "Conv2d"},
                {"type": "Pretrained", "checkpoint": "a.pth"},
            ]
        },
        "pretrained": "open-mmlab://resnet50_v1c",
    }
    assert turn_off_weights(model, "model") == ["model.backbone.init_cfg", "model.pretrained"]
    assert model == {
        "backbone": {"init_cfg": [{"type": "Kaiming", "layer": "Conv2d"}]},
        "pretrained": None,
    }


def test_the_switch_takes_a_boolean(capsys):
    line = error_line(["experiment=demo", "pretrained=no"], capsys)
    assert "pretrained='no': expected a boolean" in line


def _upstream_models(paths: list[str]) -> list[tuple[str, list]]:
    found = []
    for path in paths:
        model = Config.fromfile(path, import_custom_modules=False).to_dict().get("model", {})
        turn_off_weights(model, "model")
        found.append((path, _sources(model)))
    return found


@pytest.mark.slow
def test_the_switch_turns_off_the_weights_of_all_681_upstream_configs():
    paths = sorted(str(p) for p in UPSTREAM_CONFIGS.rglob("*.py") if "_base_" not in p.parts)
    assert len(paths) == 681
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        found = [r for half in pool.map(_upstream_models, [paths[0::2], paths[1::2]]) for r in half]
    assert [(path, left) for path, left in found if left] == []


SUGGESTED = re.compile(r"\b((?:model|load_from)[\w.]*=null|pretrained=false)")


@pytest.mark.train
@pytest.mark.parametrize(
    "weights",
    [
        ["model.pretrained=/nowhere/resnet18_v1c.pth"],  # not a file
        ["model.pretrained=http://127.0.0.1:9/resnet18_v1c.pth"],  # cannot be downloaded
        ["+model.backbone.init_cfg={type:Pretrained,checkpoint:/nowhere/r18.pth}"],
        ["+model.backbone.init_cfg={type:Pretrained,checkpoint:'http://127.0.0.1:9/r18.pth'}"],
    ],
)
def test_each_suggested_override_trains(weights, capsys):
    """The refusal's every suggestion, applied as it is written, gives a run that trains."""
    args = ["experiment=demo", *SMALL_SYNTHETIC, "train_cfg.max_iters=2", *weights]
    line = error_line(args, capsys)
    suggestions = SUGGESTED.findall(line)
    assert "pretrained=false" in suggestions and len(suggestions) == 2, line
    for suggestion in suggestions:
        run_dir = train([*args, suggestion])
        assert (run_dir / "iter_2.pth").is_file()


def test_a_missing_pretrained_part_file_is_one_line_before_training(tmp_path):
    """`Pretrained_Part` (ViT-like backbones read it themselves) is a weights file like
    `Pretrained`: checked before training, not met as a traceback when the model is built."""
    from seglab.checks.before_training import check_weights_reachable
    from seglab.errors import ConfigError

    cfg = export_config(["experiment=demo"])
    missing = tmp_path / "backbone.pth"
    cfg.model.backbone.init_cfg = dict(type="Pretrained_Part", checkpoint=str(missing))
    with pytest.raises(ConfigError, match=r"backbone\.init_cfg\.checkpoint=.* is not a file"):
        check_weights_reachable(cfg)
