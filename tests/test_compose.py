"""Every composition converts; shared values reach every use; tuples stay tuples."""

from __future__ import annotations

import pytest
from hydra.core.global_hydra import GlobalHydra
from hypothesis import given, settings
from hypothesis import strategies as st
from mmengine.config import Config

from seglab.config.compose import compose, group_options
from seglab.config.convert import export_config, run_config, write_config

MODELS = group_options("model")
DATASETS = group_options("dataset")
SCHEDULES = group_options("schedule")


def convert(overrides: list[str]) -> Config:
    return export_config(overrides)


def test_required_options_exist():
    assert {
        "upernet_r50",
        "pspnet_r50-d8",
        "fcn_r50-d8",
        "deeplabv3plus_r50-d8",
        "segformer_mit-b0",
        "upernet_r18-tiny",
    } <= set(MODELS)
    assert {"ade20k", "cityscapes", "pascal_voc12_aug", "synthetic", "custom"} <= set(DATASETS)
    assert {"20k", "40k", "80k", "160k", "short", "epochs"} <= set(SCHEDULES)


def test_default_composition_is_upernet_ade20k_80k():
    choices = compose().hydra.runtime.choices
    assert (choices.model, choices.dataset, choices.schedule) == ("upernet_r50", "ade20k", "80k")


@pytest.mark.slow  # 40 compositions: about 25 s, so in `make test`, not the fast tier
@settings(max_examples=40, deadline=None)
@given(
    model=st.sampled_from(MODELS),
    dataset=st.sampled_from(DATASETS),
    schedule=st.sampled_from(SCHEDULES),
)
def test_any_composition_converts(model, dataset, schedule):
    """Any model on any data set with any schedule: 52 x 32 x 8 choices, sampled."""
    GlobalHydra.instance().clear()
    cfg = compose([f"model={model}", f"dataset={dataset}", f"schedule={schedule}"])
    mm = run_config(cfg)  # group options: its own reference
    heads = mm.model.get("decode_head")
    heads = heads if isinstance(heads, list) else [heads] if heads else []
    for head in heads:
        if "num_classes" in head and head["type"] != "STDCHead":
            assert head["num_classes"] == cfg.dataset.num_classes
    # the schedule's end follows the run's length: iterations, or epochs (schedule=epochs)
    length = mm.train_cfg.get("max_iters", mm.train_cfg.get("max_epochs"))
    assert mm.param_scheduler[-1]["end"] == length
    crop = cfg.dataset.crop_size
    if "size" in mm.model.data_preprocessor:
        assert mm.model.data_preprocessor.size == (tuple(crop) if crop is not None else None)
    assert "dataset" not in mm and "hydra" not in mm


def _crop_uses(mm: Config) -> list:
    crops = [
        t["crop_size"] for t in mm.train_dataloader.dataset.pipeline if t["type"] == "RandomCrop"
    ]
    return [mm.data_preprocessor["size"], mm.model.data_preprocessor["size"], *crops]


@settings(max_examples=8, deadline=None)
@given(h=st.integers(32, 2048), w=st.integers(32, 2048))
def test_crop_size_override_reaches_every_use_as_a_tuple(h, w):
    mm = convert([f"dataset.crop_size=[{h},{w}]"])
    uses = _crop_uses(mm)
    assert len(uses) == 3
    assert all(use == (h, w) and type(use) is tuple for use in uses)


@settings(max_examples=6, deadline=None)
@given(n=st.integers(1, 500))
def test_class_count_reaches_every_head(n):
    mm = convert(["model=pspnet_r50-d8", f"dataset.num_classes={n}"])
    assert mm.model.decode_head.num_classes == mm.model.auxiliary_head.num_classes == n


def test_custom_class_count_follows_class_names():
    mm = convert(
        [
            "dataset=custom",
            "dataset.classes=[sky,road,car]",
            "dataset.palette=[[0,0,255],[128,128,128],[255,0,0]]",
        ]
    )
    assert mm.model.decode_head.num_classes == mm.model.auxiliary_head.num_classes == 3
    assert mm.train_dataloader.dataset.metainfo.classes == ["sky", "road", "car"]


def test_max_iters_moves_the_lr_schedule():
    mm = convert(
        [
            "experiment=segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512",
            "train_cfg.max_iters=3000",
        ]
    )
    assert mm.train_cfg.max_iters == 3000
    assert mm.param_scheduler[-1]["end"] == 3000
    assert mm.param_scheduler[0]["end"] == 1500  # the warm-up keeps its length


def test_direct_override_of_a_tuple_stays_a_tuple():
    mm = convert(["model.backbone.strides=[1,2,2,1]", "dataset.scale=[1024,256]"])
    assert mm.model.backbone.strides == (1, 2, 2, 1)
    resize = mm.test_dataloader.dataset.pipeline[1]
    assert resize["scale"] == (1024, 256) and type(resize["scale"]) is tuple


def test_data_root_override_reaches_every_loader(tmp_path):
    mm = convert(["dataset=pascal_voc12_aug", f"dataset.data_root={tmp_path}"])
    roots = [d["data_root"] for d in mm.train_dataloader.dataset.datasets]
    roots += [mm.val_dataloader.dataset.data_root, mm.test_dataloader.dataset.data_root]
    assert roots == [str(tmp_path)] * 4


@pytest.mark.parametrize(
    "overrides", [[], ["experiment=demo"], ["dataset=custom", "model=segformer_mit-b0"]]
)
def test_export_round_trip(tmp_path, overrides):
    """The written file loads back to the same config, tuples included."""
    mm = convert(overrides)
    loaded = Config.fromfile(str(write_config(mm, tmp_path / "exported.py", header="a\nb")))
    assert loaded.to_dict() == mm.to_dict()
    assert "import" not in (tmp_path / "exported.py").read_text()
    assert type(loaded.train_dataloader.dataset.pipeline[3]["crop_size"]) is tuple


def test_export_to_stdout_comments_every_header_line(tmp_path, capsys):
    """An override holding a newline stays inside the printed header's comments."""
    from seglab.cli import main

    marker = tmp_path / "it-ran"
    payload = f'__import__("pathlib").Path("{marker}").touch()'
    main(["export", f"+dataset.note='x\n{payload}\r{payload}'"])
    printed = capsys.readouterr().out
    carrying = [line for line in printed.splitlines() if "__import__" in line]
    assert carrying and all(line.startswith("#") for line in carrying), carrying
    (tmp_path / "printed.py").write_text(printed)
    Config.fromfile(str(tmp_path / "printed.py"))
    assert not marker.exists()


def test_amp_turns_the_optimizer_wrapper_into_mmsegs_amp_wrapper():
    wrapper = convert(["amp=true"]).optim_wrapper
    assert wrapper.type == "AmpOptimWrapper" and wrapper.loss_scale == "dynamic"
    assert wrapper.optimizer.type == "SGD"
    assert "amp" not in convert(["amp=true"])
