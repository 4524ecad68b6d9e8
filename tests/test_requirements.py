"""What upstream configs need beyond seglab's install, named in one line before any training;
and the class-count check on upstream's own head/data-set combinations."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmengine.config import Config

from seglab.checks.before_training import check_before_training, check_class_counts
from seglab.checks.requirements import ZOO, check_requirements, requirements
from seglab.config.parity import UPSTREAM_CONFIGS
from seglab.errors import ConfigError
from tests.helpers.commands import error_line

MASK2FORMER = "mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py"
CONVNEXT = "convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py"
FP16 = "pspnet/pspnet_r101-d8_4xb2-amp-80k_cityscapes-512x1024.py"
CCNET = "ccnet/ccnet_r50-d8_4xb2-40k_cityscapes-512x1024.py"
PSPNET = "pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py"
VPD = "vpd/vpd_sd_4xb8-25k_nyu-480x480.py"
STDC = sorted(str(p.relative_to(UPSTREAM_CONFIGS)) for p in UPSTREAM_CONFIGS.glob("stdc/*.py"))
SAN_VOC = sorted(
    str(p.relative_to(UPSTREAM_CONFIGS)) for p in UPSTREAM_CONFIGS.glob("san/*voc12aug*.py")
)


def upstream(name: str) -> Config:
    # the evaluated config alone: its custom_imports are what is checked, not imported here
    return Config.fromfile(str(UPSTREAM_CONFIGS / name), import_custom_modules=False)


def needs(name: str, **kwargs) -> dict[str, str]:
    return {r.what: r.why for r in requirements(upstream(name), **kwargs)}


def test_mask2former_needs_mmdet_and_for_its_weights_torchvision():
    assert needs(MASK2FORMER) == {
        "mmdet": "model.decode_head.type='Mask2FormerHead'",
        "torchvision": "model.backbone.init_cfg.checkpoint='torchvision://resnet50'",
    }


def test_convnext_needs_mmpretrain_torchvision_and_a_gpu():
    assert needs(CONVNEXT) == {
        "mmpretrain": "model.backbone.type='mmpretrain.ConvNeXt'",
        "torchvision": "model.backbone.type='mmpretrain.ConvNeXt'",  # mmpretrain.models imports it
        "a GPU": "optim_wrapper.type='AmpOptimWrapper'",
    }


def test_fp16_config_needs_a_gpu():
    (need,) = requirements(upstream(FP16), has_gpu=lambda: False)
    assert (need.what, need.why, need.available) == (
        "a GPU",
        "optim_wrapper.type='AmpOptimWrapper'",
        False,
    )


@pytest.mark.parametrize("name", [CCNET, PSPNET])
def test_cchead_and_pspnet_need_nothing_more(name):
    # CCHead's CrissCrossAttention trains on a CPU in mmcv 2.1.0 (measured, see requirements.py)
    assert requirements(upstream(name)) == []


def test_missing_package_is_one_line_with_key_and_how():
    with pytest.raises(ConfigError) as err:
        check_requirements(upstream(MASK2FORMER), is_installed=lambda m: m.split(".")[0] != "mmdet")
    assert str(err.value) == (
        f"model.decode_head.type='Mask2FormerHead' needs mmdet, which is not installed; {ZOO}"
    )


def test_mmpretrain_custom_import_names_the_import_when_its_module_is_missing():
    config = {"custom_imports": {"imports": ["mmpretrain.models"], "allow_failed_imports": False}}
    with pytest.raises(ConfigError, match=r"^custom_imports.imports='mmpretrain.models' needs mmp"):
        check_requirements(config, is_installed=lambda m: m == "torchvision")


def test_ldm_really_absent_is_named():
    (need,) = [r for r in requirements(upstream(VPD)) if r.what == "ldm"]
    assert (need.why, need.available) == ("model.backbone.type='VPD'", False)
    assert "no package on PyPI" in need.how


def test_requirement_is_checked_before_data_and_training():
    # VPD's data root (data/nyu) does not exist here: the data check would name it first
    with pytest.raises(ConfigError) as err:
        check_before_training(upstream(VPD))
    line = str(err.value)
    assert line.startswith("model.backbone.type='VPD' needs ldm, which is not installed; ")
    assert "\n" not in line


def test_fp16_config_on_a_cpu_names_optim_wrapper_not_amp():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: AmpOptimWrapper is valid here")
    with pytest.raises(ConfigError) as err:
        check_before_training(upstream(FP16))
    line = str(err.value)
    assert line.startswith("optim_wrapper.type='AmpOptimWrapper' needs a GPU, which this machine")
    assert "amp=true" not in line and "optim_wrapper.type=OptimWrapper" in line


def test_refused_requirement_leaves_no_run(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: AmpOptimWrapper is valid here")
    line = error_line(["experiment=demo", "optim_wrapper.type=AmpOptimWrapper"], capsys)
    assert "optim_wrapper.type='AmpOptimWrapper' needs a GPU" in line
    assert list(Path.cwd().glob("outputs/runs/*")) == [], "refused: no directory is left"


@pytest.mark.parametrize("name", STDC + SAN_VOC)
def test_upstream_class_counts_are_accepted(name):
    assert len(STDC) == 4 and len(SAN_VOC) == 2
    check_class_counts(upstream(name))


def test_stdc_decode_head_disagreeing_with_the_data_set_is_refused():
    cfg = upstream(STDC[0])
    cfg.model.decode_head.num_classes = 7
    with pytest.raises(ConfigError, match=r"model.decode_head.num_classes=7: .* 19 classes"):
        check_class_counts(cfg)


def test_stdc_detail_head_with_the_data_sets_classes_is_refused():
    cfg = upstream(STDC[0])
    cfg.model.auxiliary_head[2].num_classes = 19
    with pytest.raises(ConfigError, match=r"auxiliary_head\[2\].num_classes=19: STDCHead .* 2$"):
        check_class_counts(cfg)


def test_san_head_disagreeing_with_its_test_set_is_refused():
    cfg = upstream(SAN_VOC[0])
    cfg.model.decode_head.num_classes = 21
    with pytest.raises(ConfigError, match=r"num_classes=21: the data set \(val_dataloader.*20 cl"):
        check_class_counts(cfg)


def test_torchvision_weights_need_torchvision():
    """mmengine loads torchvision:// through torchvision: Mask2Former-R50 needs it too."""
    cfg = Config.fromfile(
        str(UPSTREAM_CONFIGS / "mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py"),
        import_custom_modules=False,
    )
    needs = {r.what: r.why for r in requirements(cfg)}
    assert needs["torchvision"] == "model.backbone.init_cfg.checkpoint='torchvision://resnet50'"


def test_mmcls_weights_resolve_to_the_url_mmengine_downloads():
    from seglab.checks.before_training import resolve_weights_url

    url = resolve_weights_url("mmcls://mobilenet_v2")
    assert url is not None and url.startswith("https://download.openmmlab.com/mmclassification/")


def test_slurm_launcher_without_sbatch(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no scontrol
    line = error_line(
        ["-m", "hydra/launcher=slurm", "experiment=demo", "randomness.seed=1,2"], capsys
    )
    assert "hydra/launcher=slurm: this machine has no SLURM (no sbatch on PATH)" in line
    assert "hydra/launcher=slurm_local" in line


@pytest.mark.processes  # runs `scontrol ping`
def test_slurm_launcher_whose_controller_does_not_answer(capsys, monkeypatch, tmp_path):
    import shutil

    if not (shutil.which("sbatch") and shutil.which("scontrol")):
        pytest.skip("no SLURM commands here (the test above covers this machine)")
    conf = tmp_path / "slurm.conf"
    conf.write_text("")  # a configuration SLURM refuses at once: no controller to ask
    monkeypatch.setenv("SLURM_CONF", str(conf))
    line = error_line(["-m", "hydra/launcher=submitit_slurm", "experiment=demo"], capsys)
    assert "hydra/launcher=submitit_slurm: SLURM does not answer here (`scontrol ping`" in line


KNET = "knet/knet-s3_r50-d8_upernet_8xb2-adamw-80k_ade20k-512x512.py"
SEGFORMER = "segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py"


@pytest.mark.parametrize("name", [MASK2FORMER, KNET, SEGFORMER, VPD, *SAN_VOC[:1], *STDC[:1]])
def test_upstream_types_are_all_found_in_their_registries(name):
    """The registry check accepts upstream's configs (all 670 that load here were checked
    once); those here hold mmdet's types, nested heads, weight initialisers, TTA pipelines."""
    from seglab.checks.before_training import check_registry_types, typed_nodes

    cfg = upstream(name)
    assert len(list(typed_nodes(cfg))) > 10  # model, data, optimizer, hooks, ...
    check_registry_types(cfg)
