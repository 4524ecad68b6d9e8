"""`seglab import`: a user's own mmseg config becomes an experiment that exports back to it."""

from __future__ import annotations

import uuid

import pytest

from seglab.cli import main as seglab_main
from seglab.config.compose import CONF_DIR
from seglab.config.parity import UPSTREAM_CONFIGS
from seglab.zoo.generate import values_of

EXPERIMENTS = CONF_DIR / "experiment"

# these tests add files to the repository's experiments/ and conf/_delete_ for a moment: they
# hold the lock the test that compares those folders with the generator's output holds
pytestmark = pytest.mark.usefixtures("repository_configs")

USER_BASE = """
_base_ = ['mmseg::pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py']
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(backbone=dict(norm_cfg=norm_cfg), decode_head=dict(norm_cfg=norm_cfg))
"""

USER_CONFIG = """
_base_ = ['./my_base.py']
crop_size = (640, 640)
data_root = '/data/mine'
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(_delete_=True, type='FCNHead', in_channels=2048, in_index=3, channels=256,
                     num_classes=19, loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2048, 1024), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4))
"""

# a data set written inline, on upstream's bases named `mmseg::` (mmengine then marks each of
# their dicts with `_scope_='mmseg'`): no data set option gives the shared values
OWN_DATA_CONFIG = """
_base_ = ['mmseg::_base_/models/fcn_r50-d8.py', 'mmseg::_base_/default_runtime.py',
          'mmseg::_base_/schedules/schedule_20k.py']
data_root = '/data/mine'
crop_size = (256, 320)
metainfo = dict(classes=('bg', 'road', 'car'), palette=[[0, 0, 0], [128, 64, 128], [0, 0, 142]])
model = dict(data_preprocessor=dict(size=crop_size),
             decode_head=dict(num_classes=3), auxiliary_head=dict(num_classes=3))
train_pipeline = [
    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(640, 480), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='PackSegInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(640, 480)),
                 dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
train_dataloader = dict(
    batch_size=4, num_workers=2, sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
                 data_prefix=dict(img_path='img/train', seg_map_path='ann/train'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
                 data_prefix=dict(img_path='img/val', seg_map_path='ann/val'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
"""


@pytest.fixture(autouse=True)
def no_new_delete_configs(repository_configs):
    """An import may add conf/_delete_/ files for its experiment: the test's are removed."""
    before = set((CONF_DIR / "_delete_").glob("*.yaml"))
    yield
    for path in set((CONF_DIR / "_delete_").glob("*.yaml")) - before:
        path.unlink()


@pytest.fixture
def out_name():
    """A fresh experiment name under experiments/, removed afterwards."""
    name = f"imported-{uuid.uuid4().hex[:8]}"
    yield name
    (EXPERIMENTS / f"{name}.yaml").unlink(missing_ok=True)


def _body(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("#")]


def test_an_upstream_config_imports_as_its_generated_experiment(out_name, capsys):
    rel = "segformer/segformer_mit-b5_8xb2-160k_ade20k-640x640"
    seglab_main(
        ["import", str(UPSTREAM_CONFIGS / f"{rel}.py"), f"out={EXPERIMENTS}/{out_name}.yaml"]
    )
    assert "exports a config equal to" in capsys.readouterr().out
    imported = (EXPERIMENTS / f"{out_name}.yaml").read_text()
    assert _body(imported) == _body((EXPERIMENTS / f"{rel}.yaml").read_text())


def test_a_user_config_with_delete_crop_and_data_root_comes_back_equal(tmp_path, out_name, capsys):
    (tmp_path / "my_base.py").write_text(USER_BASE)
    (tmp_path / "my_pspnet.py").write_text(USER_CONFIG)
    seglab_main(["import", str(tmp_path / "my_pspnet.py"), f"out={EXPERIMENTS}/{out_name}.yaml"])
    assert "exports a config equal to" in capsys.readouterr().out
    text = (EXPERIMENTS / f"{out_name}.yaml").read_text()
    # the parent experiment and the shared values, set once
    assert "/experiment/pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024" in text
    assert "crop_size: [640, 640]" in text and "data_root: /data/mine" in text
    assert text.count("640") == 2 and text.count("/data/mine") == 1
    assert "/_delete_/model.decode_head" in text and "/_delete_/optim_wrapper" in text


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("model = dict(\n", "cannot load it (SyntaxError"),
        ("_base_ = ['./missing_base.py']\n", "cannot load it"),
    ],
)
def test_a_file_that_does_not_load_is_one_line(tmp_path, content, reason, capsys):
    path = tmp_path / "broken.py"
    path.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        seglab_main(["import", str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and reason in err
    assert not (EXPERIMENTS / "broken.yaml").exists()


def test_an_existing_experiment_is_not_overwritten(tmp_path, capsys):
    with pytest.raises(SystemExit):
        seglab_main(
            [
                "import",
                str(UPSTREAM_CONFIGS / "fcn/fcn_r50-d8_4xb4-20k_voc12aug-512x512.py"),
                f"out={EXPERIMENTS}/demo.yaml",
            ]
        )
    assert "exists" in capsys.readouterr().err
    assert "The demo" in (EXPERIMENTS / "demo.yaml").read_text()


def test_a_value_yaml_cannot_hold_is_one_line_naming_its_key(tmp_path, capsys):
    """A tuple of dicts has no OmegaConf form: the key and the value, not a traceback."""
    path = tmp_path / "odd.py"
    path.write_text(
        "_base_ = ['mmseg::fcn/fcn_r50-d8_4xb4-20k_voc12aug-512x512.py']\n"
        "model = dict(decode_head=dict(extra=(dict(a=1),)))\n"
    )
    with pytest.raises(SystemExit) as exit_info:
        seglab_main(["import", str(path), f"out={EXPERIMENTS}/odd-{uuid.uuid4().hex[:6]}.yaml"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "model.decode_head.extra=({'a': 1},)" in err and "cannot express" in err


@pytest.mark.parametrize(
    ("config", "crop"), [(OWN_DATA_CONFIG, (256, 320)), (USER_CONFIG, (640, 640))]
)
def test_an_imported_config_takes_the_shared_data_root_and_crop(
    tmp_path, out_name, capsys, config, crop
):
    """The user's root and crop are the experiment's `dataset.*` values, written once, so
    that overriding them reaches every loader and every crop, as in a zoo experiment."""
    from seglab.config.convert import export_config

    (tmp_path / "my_base.py").write_text(USER_BASE)
    (tmp_path / "mine.py").write_text(config)
    seglab_main(["import", str(tmp_path / "mine.py"), f"out={EXPERIMENTS}/{out_name}.yaml"])
    assert "exports a config equal to" in capsys.readouterr().out
    text = (EXPERIMENTS / f"{out_name}.yaml").read_text()
    assert text.count("/data/mine") == 1 and "_scope_" not in text
    assert f"crop_size: [{crop[0]}, {crop[1]}]" in text

    mm = export_config(
        [f"experiment={out_name}", "dataset.data_root=/other", "dataset.crop_size=[48,64]"]
    ).to_dict()
    loaders = {k: mm[k] for k in ("train_dataloader", "val_dataloader", "test_dataloader")}
    roots = values_of(loaders, "data_root")
    assert len(roots) == 3 and set(roots) == {"/other"}
    crops = [*values_of(loaders, "crop_size"), mm["model"]["data_preprocessor"]["size"]]
    assert len(crops) >= 2 and set(crops) == {(48, 64)}
    assert "/data/mine" not in str(mm) and str(crop) not in str(mm)
