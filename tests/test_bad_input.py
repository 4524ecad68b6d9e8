"""Bad input ends in one clear line naming the key, the value and what was expected,
before any training starts (no checkpoint, no log of a training iteration)."""

from __future__ import annotations

import copy

import pytest

from seglab.errors import ConfigError
from tests.helpers.commands import error_line
from tests.helpers.data import ade20k_folder


def test_unknown_group_option_names_the_closest(capsys):
    line = error_line(["model=upernet_r51"], capsys)
    assert "model=upernet_r51" in line and "did you mean upernet_r50" in line
    assert "pspnet_r50-d8" not in line  # the near ones, not all 52


def test_unknown_option_in_a_sweep(capsys):
    line = error_line(["-m", "dataset=ade20k,ade21k"], capsys)
    assert "dataset=ade21k" in line and "ade20k" in line


def test_a_short_group_lists_all_its_options(capsys):
    line = error_line(["optim_wrapper=adam"], capsys)
    assert "expected one of: adamw, sgd" in line


def test_unknown_option_on_export(capsys):
    assert "schedule=90k" in error_line(["export", "schedule=90k"], capsys)


def test_missing_data_root_names_path_and_override(capsys, tmp_path):
    missing = tmp_path / "ADEChallengeData2016"
    line = error_line(
        [
            "experiment=demo",
            "dataset=ade20k",
            f"dataset.data_root={missing}",
            "model.decode_head.num_classes=150",
        ],
        capsys,
    )
    assert str(missing) in line and "dataset.data_root=PATH" in line


@pytest.mark.parametrize(
    "override,expected",
    [
        ("dataset.crop_size=512", "dataset.crop_size=512: expected a list"),
        ("dataset.crop_size=[64,64,3]", "dataset.crop_size=[64, 64, 3]: expected 2 values"),
        ("train_cfg.max_iters=many", "train_cfg.max_iters='many': expected a number"),
        ("optim_wrapper.optimizer=0.1", "optim_wrapper.optimizer=0.1: expected a mapping"),
        ("model.backbone.strides=[1,2]", "model.backbone.strides=[1, 2]: expected 4 values"),
    ],
)
def test_override_of_wrong_type_or_shape(capsys, override, expected):
    assert expected in error_line(["experiment=demo", override], capsys)


def test_class_count_disagreeing_with_the_dataset(capsys):
    line = error_line(["experiment=demo", "model.decode_head.num_classes=7"], capsys)
    assert "model.decode_head.num_classes=7" in line and "4 classes" in line


def test_class_count_disagreeing_with_a_registered_dataset(capsys):
    line = error_line(["dataset.num_classes=100"], capsys)
    assert "num_classes=100" in line and "150 classes" in line


def custom_data_error(root, capsys, *overrides: str) -> str:
    """The error line of the demo model on the folder `root` as `dataset=custom`."""
    args = ["experiment=demo", "dataset=custom", f"dataset.data_root={root}", *overrides]
    return error_line(args, capsys)


def test_label_maps_with_more_classes_than_declared(capsys, tmp_path):
    root = ade20k_folder(tmp_path / "data", labels=[0, 1, 4])
    line = custom_data_error(root, capsys)
    assert "label 4" in line and "2 classes" in line


def test_two_class_data_with_reduce_zero_label(capsys, tmp_path):
    root = ade20k_folder(tmp_path / "data", labels=[0, 1])
    line = custom_data_error(root, capsys, "dataset.reduce_zero_label=true")
    assert "dataset.reduce_zero_label=true" in line and "expected false" in line


def test_unreachable_pretrained_url_says_how_to_fix_it(capsys):
    url = "https://weights.invalid/resnet18_v1c.pth"  # .invalid never resolves (RFC 2606)
    line = error_line(["experiment=demo", f"model.pretrained={url}"], capsys)
    assert f"model.pretrained='{url}'" in line
    assert "model.pretrained=/path/to/resnet18_v1c.pth" in line and "model.pretrained=null" in line


def test_missing_local_weights_file(capsys, tmp_path):
    line = error_line(["experiment=demo", f"model.pretrained={tmp_path}/w.pth"], capsys)
    assert "is not a file" in line and "model.pretrained=null" in line


def test_amp_without_a_gpu(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: amp=true is valid here")
    line = error_line(["experiment=demo", "amp=true"], capsys)
    assert "amp=true" in line and "needs a GPU" in line


@pytest.mark.parametrize(
    ("launcher", "expected"), [("pytorch", "started by torchrun"), ("mpirun", "expected one of")]
)
def test_launcher_that_this_process_was_not_started_by(capsys, monkeypatch, launcher, expected):
    monkeypatch.delenv("RANK", raising=False)
    line = error_line(["experiment=demo", f"launcher={launcher}"], capsys)
    assert f"launcher={launcher!r}" in line and expected in line


def test_weights_in_torch_hub_cache_need_no_network(tmp_path, monkeypatch):
    from mmengine.config import Config

    from seglab.checks.before_training import check_weights_reachable, resolve_weights_url

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / "resnet18_v1c.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"weights")
    cfg = Config({"model": {"pretrained": "https://weights.invalid/resnet18_v1c.pth"}})
    check_weights_reachable(cfg, network_timeout=0.5)  # found in the cache: no download needed
    assert resolve_weights_url("open-mmlab://resnet50_v1c").startswith("https://")


def test_unknown_optimizer_names_the_closest(capsys):
    """Today mmengine's `None is not a callable object`, after the model is built."""
    line = error_line(["experiment=demo", "optim_wrapper.optimizer.type=Adamm"], capsys)
    assert "optim_wrapper.optimizer.type='Adamm': no optimizer 'Adamm' in mmengine's" in line
    assert "did you mean" in line and "AdamW" in line


@pytest.fixture(scope="module")
def demo_config():
    from seglab.config.convert import export_config

    return export_config(["experiment=demo"])


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("model.decode_head.type", "UPerHed", "no model 'UPerHed' in mmseg's or mmengine's"),
        ("train_dataloader.dataset.type", "ADE20KDatset", "no dataset 'ADE20KDatset'"),
        ("train_dataloader.dataset.pipeline[0].type", "LoadImageFromFle", "no transform"),
        ("train_dataloader.sampler.type", "InfiniteSampllr", "no data sampler"),
        ("default_hooks.logger.type", "LoggerHok", "no hook 'LoggerHok'"),
        ("param_scheduler[0].type", "PolyLRR", "no parameter scheduler 'PolyLRR'"),
        ("val_evaluator.type", "IoUMetrc", "no metric 'IoUMetrc'"),
        ("model.backbone.norm_cfg.type", "SyncBNN", "no model 'SyncBNN'"),
    ],
)
def test_unknown_type_in_each_registry(demo_config, key, value, expected):
    from seglab.checks.before_training import check_registry_types

    cfg = copy.deepcopy(demo_config)
    node = cfg
    *path, last = key.replace("[", ".").replace("]", "").split(".")
    for part in path:
        node = node[int(part)] if part.isdigit() else node[part]
    node[last] = value
    with pytest.raises(ConfigError, match="did you mean") as error:
        check_registry_types(cfg)
    assert f"{key}={value!r}: {expected}" in str(error.value)
    check_registry_types(demo_config)  # the demo's own types are all found


def test_init_cfg_types_that_modules_read_themselves_pass(demo_config):
    """mmseg's ViT, CLIP text encoder and SAN head read `Pretrained_Part` in their own
    init_weights (no registry holds it): it passes; a misspelt initializer does not."""
    from seglab.checks.before_training import check_registry_types

    cfg = copy.deepcopy(demo_config)
    cfg.model.backbone.init_cfg = dict(type="Pretrained_Part", checkpoint="x.pth")
    check_registry_types(cfg)
    cfg.model.backbone.init_cfg = dict(type="Pretrianed", checkpoint="x.pth")
    with pytest.raises(ConfigError, match="no weight initializer 'Pretrianed'.*Pretrained"):
        check_registry_types(cfg)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train_cfg.max_iters=20.5", "train_cfg.max_iters=20.5: expected a positive integer"),
        ("model.backbone.depth=51", "has no depth 51; expected one of 18, 34, 50, 101, 152"),
    ],
)
def test_impossible_count_or_depth(capsys, override, expected):
    assert expected in error_line(["experiment=demo", override], capsys)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("train_cfg.max_iters", -5, "train_cfg.max_iters=-5: expected a positive integer"),
        ("train_dataloader.batch_size", 0, "train_dataloader.batch_size=0: expected a positive"),
        ("val_dataloader.num_workers", -1, "expected an integer from 0 up"),
    ],
)
def test_impossible_counts(demo_config, key, value, expected):
    from seglab.checks.before_training import check_counts

    cfg = copy.deepcopy(demo_config)
    top, name = key.split(".")
    cfg[top][name] = value
    with pytest.raises(ConfigError, match=expected):
        check_counts(cfg)


def test_palette_of_another_length_than_the_classes(capsys, tmp_path):
    root = ade20k_folder(tmp_path / "data", labels=[0, 1])
    line = custom_data_error(root, capsys, "dataset.palette=[[0,0,0],[255,255,255],[255,0,0]]")
    assert "3 colours for 2 classes" in line and "dataset.palette" in line


@pytest.mark.parametrize("command", [[], ["export"]])
def test_override_syntax_error_is_hydras_message_on_one_line(capsys, command):
    line = error_line([*command, "experiment=demo", "dataset.crop_size=[64,64"], capsys)
    assert "dataset.crop_size=[64,64: no viable alternative at input '[64,64'" in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["optim_wrapper.optimizer.lrr=0.1"],
            "optim_wrapper.optimizer.lrr=0.1: no key lrr under optim_wrapper.optimizer; "
            "did you mean lr?",
        ),
        (
            ["export", "optim_wrapper.optimizer.lrr=0.1"],
            "no key lrr under optim_wrapper.optimizer; did you mean lr?",
        ),
        (["optim_wrapper.optimizr.lr=0.1"], "no key optimizr under optim_wrapper; did you mean"),
        (["-m", "train_cfg.max_iterz=1,2"], "no key max_iterz under train_cfg; did you mean"),
        (["foo=3"], "foo=3: no key foo at the top level; +foo=3 adds it"),
    ],
)
def test_key_typo_names_the_closest_key(capsys, args, expected):
    """Hydra's own hint, `+KEY=VALUE`, trains with a key no class reads (or a traceback)."""
    command = args[:1] if args[0] in ("export", "-m") else []
    line = error_line([*command, "experiment=demo", *args[len(command) :]], capsys)
    assert expected in line


def test_typo_in_one_of_hydras_groups(capsys):
    line = error_line(["-m", "hydra/launcher=gpu_pol", "experiment=demo"], capsys)
    assert "hydra/launcher=gpu_pol: no such hydra/launcher option" in line and "gpu_pool" in line


def test_gpu_pool_without_a_gpu(capsys, monkeypatch):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the pool is not empty")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    line = error_line(
        ["-m", "hydra/launcher=gpu_pool", "experiment=demo", "train_cfg.max_iters=2,4"], capsys
    )
    assert "hydra/launcher=gpu_pool: this machine has no GPU" in line


def test_a_crop_smaller_than_the_sliding_windows_stride_is_one_line(capsys):
    """UNet's window follows the crop (64 px) and keeps its stride of 42: at a 32 px crop the
    validation would stop in mmseg's AssertionError after the training. The suggested stride
    passes the check."""
    from seglab.checks.before_training import check_sliding_window
    from seglab.config.convert import export_config

    args = ["experiment=unet/unet-s5-d16_fcn_4xb4-40k_drive-64x64", "dataset.crop_size=[32,32]"]
    with pytest.raises(ConfigError) as refused:
        check_sliding_window(export_config(args))
    line = str(refused.value)
    assert line.startswith("model.test_cfg.stride=[42, 42]: larger than the sliding window")
    assert line.endswith("e.g. model.test_cfg.stride=[21,21]")
    check_sliding_window(export_config([*args, "model.test_cfg.stride=[21,21]"]))


@pytest.mark.parametrize(
    ("palette", "shown"),
    [("[128,64,128]", "holds 128"), ("[[0,0,0],[220,20,600]]", "holds [220, 20, 600]")],
)
def test_a_palette_that_is_not_colours_is_one_line(capsys, tmp_path, palette, shown):
    """A flat [r, g, b] for the whole data set trained and then broke `seglab infer`; a value
    over 255 was taken as it was."""
    root = ade20k_folder(tmp_path / "data", labels=[0, 1])
    line = custom_data_error(root, capsys, f"dataset.palette={palette}")
    assert shown in line and "each a whole number from 0 to 255" in line


def test_persistent_workers_without_workers_is_one_line_whose_advice_works(capsys):
    """torch raised it as the Runner built the loader, after the model: a traceback."""
    from seglab.checks.before_training import check_counts
    from seglab.config.convert import export_config

    args = ["experiment=demo", "train_dataloader.num_workers=0"]
    line = error_line(args, capsys)
    assert "train_dataloader.persistent_workers=true: needs train_dataloader.num_workers" in line
    assert line.endswith("set train_dataloader.persistent_workers=false as well")
    check_counts(export_config([*args, "train_dataloader.persistent_workers=false"]))


def test_seglab_test_with_persistent_workers_and_none_is_one_line(trained_run, capsys):
    args = ["test", f"run_dir={trained_run}", "test_dataloader.persistent_workers=true"]
    line = error_line(args, capsys, trained=True)
    assert "test_dataloader.persistent_workers=true: needs test_dataloader.num_workers" in line


def test_a_class_count_without_class_names_names_the_key_that_sets_both(capsys, tmp_path):
    """`dataset=custom dataset.num_classes=3` had been told to set dataset.num_classes."""
    from seglab.checks.before_training import check_class_counts
    from seglab.config.convert import export_config

    root = ade20k_folder(tmp_path / "data", labels=[0, 1, 2])
    line = custom_data_error(root, capsys, "dataset.num_classes=3")
    assert "has 2 classes (background, foreground)" in line and "dataset.classes=[" in line
    args = ["experiment=demo", "dataset=custom", f"dataset.data_root={root}"]
    check_class_counts(export_config([*args, "dataset.classes=[road,car,person]"]))


@pytest.mark.train
def test_a_number_read_from_the_environment_names_oc_decode_which_trains(capsys, monkeypatch):
    """`${oc.env:VAR}` gives text: the line names the key the user set (not a place that
    interpolates it) and the `${oc.decode:...}` form, which trains."""
    from pathlib import Path

    from seglab.cli import main
    from tests.helpers.commands import QUICK

    monkeypatch.setenv("SEGLAB_TEST_ITERS", "2")
    quick = [o for o in QUICK if not o.startswith("train_cfg.")]
    line = error_line([*quick, "train_cfg.max_iters=${oc.env:SEGLAB_TEST_ITERS}"], capsys)
    assert line.startswith("seglab: error: train_cfg.max_iters=")
    suggested = line.split("(an environment variable is text: set ", 1)[1].rstrip(")")
    assert suggested == "train_cfg.max_iters='${oc.decode:${oc.env:SEGLAB_TEST_ITERS}}'"
    main([*quick, "train_cfg.val_interval=2", suggested])
    (run_dir,) = Path("outputs/runs").iterdir()
    assert (run_dir / "iter_2.pth").is_file()
