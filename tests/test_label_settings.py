"""Label settings that disagree with the head's class count are one line before training,
and the setting each line suggests is accepted (seglab/checks/label_settings.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from seglab.checks.label_settings import check_label_settings
from seglab.config.convert import export_config
from seglab.errors import ConfigError
from tests.helpers.commands import SMALL_SYNTHETIC, error_line, train
from tests.helpers.data import ade20k_folder

DEMO = ["experiment=demo", *SMALL_SYNTHETIC]
# two iterations of batch 2 and a validation, no checkpoint
SHORT = [
    "train_dataloader.batch_size=2",
    "dataset.crop_size=[32,32]",
    "train_cfg.max_iters=2",
    "train_cfg.val_interval=2",
    "default_hooks.checkpoint.interval=1000",
    "++default_hooks.checkpoint.save_last=false",
]

CASES = [
    pytest.param(
        ["+model.decode_head.out_channels=1", "model.auxiliary_head=null"],
        "model.decode_head.loss_decode.use_sigmoid=False with one output channel",
        ["model.decode_head.out_channels=4"],
        id="one-channel-softmax",
    ),
    pytest.param(
        [
            "+model.decode_head.out_channels=1",
            "model.decode_head.loss_decode.use_sigmoid=true",
            "model.auxiliary_head=null",
        ],
        "one sigmoid channel tells 2 classes apart, not 4",
        ["model.decode_head.out_channels=4"],
        id="one-sigmoid-channel-for-4-classes",
    ),
    pytest.param(
        ["+model.decode_head.loss_decode.class_weight={a:1}"],
        "class_weight={'a': 1}: expected a list of 4 numbers",
        ["model.decode_head.loss_decode.class_weight=[1.0,1.0,1.0,1.0]"],
        id="class-weight-mapping",
    ),
    pytest.param(
        ["+model.decode_head.loss_decode.class_weight=[1,2,3,x]"],
        "expected a list of 4 numbers, one per class ('x' is not a number)",
        ["model.decode_head.loss_decode.class_weight=[1.0,1.0,1.0,1.0]"],
        id="class-weight-not-a-number",
    ),
    pytest.param(
        ["+model.decode_head.ignore_index='1'"],
        "model.decode_head.ignore_index='1': expected an integer label value",
        ["model.decode_head.ignore_index=255"],
        id="ignore-index-string",
    ),
    pytest.param(
        ["model.decode_head.loss_decode.0.class_weight=[1.0,2.0]"],
        "model.decode_head.loss_decode.0.class_weight has 2 values: expected 19",
        ["model.decode_head.loss_decode.0.class_weight=null"],
        id="list-of-losses",
    ),
    pytest.param(
        ["+model.decode_head.loss_decode.class_weight=[1.0,2.0]"],
        "model.decode_head.loss_decode.class_weight has 2 values: expected 4",
        ["model.decode_head.loss_decode.class_weight=null"],
        id="class-weight-length",
    ),
    pytest.param(
        ["data_preprocessor.seg_pad_val=0"],
        "data_preprocessor.seg_pad_val=0: a class index",
        ["data_preprocessor.seg_pad_val=255"],
        id="padding-is-a-class",
    ),
    pytest.param(
        ["+model.decode_head.ignore_index=2"],
        "model.decode_head.ignore_index=2: a class index",
        ["model.decode_head.ignore_index=255"],
        id="ignore-index-is-a-class",
    ),
]


def suggested(line: str) -> str:
    """The `KEY=VALUE` after the last `set ` of a refusal."""
    return line.rsplit(" set ", 1)[1].split(" ", 1)[0].rstrip(",")


# a zoo model whose decode head has a list of losses (OHEM cross-entropy with Cityscapes' 19
# class weights, and another); Hydra reaches a list's item by its index
DDRNET = "experiment=ddrnet/ddrnet_23-slim_in1k-pre_2xb6-120k_cityscapes-1024x1024"


def applied(overrides: list[str], fix: list[str]) -> list[str]:
    """The overrides as a user applies a suggested `KEY=VALUE`: the value of their own
    override of KEY replaced (its `+` kept), else the override added."""
    out = list(overrides)
    for item in fix:
        key = item.split("=", 1)[0]
        mine = [i for i, o in enumerate(out) if o.lstrip("+").split("=", 1)[0] == key]
        if mine:
            prefix = out[mine[0]][: len(out[mine[0]]) - len(out[mine[0]].lstrip("+"))]
            out[mine[0]] = prefix + item
        else:
            out.append(item)
    return out


def base_of(overrides: list[str]) -> list[str]:
    return [DDRNET] if any(".loss_decode.0." in o for o in overrides) else DEMO


@pytest.mark.parametrize(("overrides", "said", "fix"), CASES)
def test_a_label_setting_against_the_class_count_is_one_line(overrides, said, fix):
    base = base_of(overrides)
    with pytest.raises(ConfigError) as refused:
        check_label_settings(export_config([*base, *overrides]))
    line = str(refused.value)
    assert "\n" not in line and said in line, line
    assert suggested(line) == fix[0]
    check_label_settings(export_config([*base, *applied(overrides, fix)]))  # the fix works


def test_class_weights_in_a_file_are_read_as_data_and_checked(tmp_path):
    """mmseg reads a class_weight file with mmengine.load, which unpickles a .pkl: seglab
    refuses every file but JSON and NumPy's (read without pickles) and checks their list."""
    import pickle

    import numpy as np

    key = "+model.decode_head.loss_decode.class_weight"
    (tmp_path / "w.pkl").write_bytes(pickle.dumps([1.0] * 4))
    (tmp_path / "two.json").write_text("[1.0, 2.0]")
    (tmp_path / "four.json").write_text("[1.0, 2.0, 1.0, 1.0]")
    np.save(tmp_path / "four.npy", np.ones(4))
    for name, said in [
        ("w.pkl", "a pickle or YAML file can run code as it loads"),
        ("two.json", "class_weight has 2 values: expected 4"),
        ("missing.json", "cannot be read as JSON"),
    ]:
        with pytest.raises(ConfigError, match=said):
            check_label_settings(export_config([*DEMO, f"{key}={tmp_path / name}"]))
    for name in ("four.json", "four.npy"):
        check_label_settings(export_config([*DEMO, f"{key}={tmp_path / name}"]))


def test_an_argument_the_loss_does_not_take_is_one_line():
    """mmseg's CrossEntropyLoss takes no ignore_index (the head's is the one it leaves out)."""
    with pytest.raises(ConfigError) as refused:
        check_label_settings(
            export_config([*DEMO, "+model.decode_head.loss_decode.ignore_index=1"])
        )
    assert "CrossEntropyLoss takes no argument ignore_index" in str(refused.value)
    assert "model.decode_head.ignore_index (now 255)" in str(refused.value)


@pytest.mark.parametrize("prefix", ["", "+", "++"])
def test_a_key_under_an_interpolated_node_names_the_node_it_reads(prefix):
    """`model.data_preprocessor` is `${data_preprocessor}`: Hydra finds no key under it, and
    `++` would replace the whole node by one holding only seg_pad_val (mean, std lost)."""
    with pytest.raises(ConfigError) as refused:
        export_config([*DEMO, f"{prefix}model.data_preprocessor.seg_pad_val=0"])
    line = str(refused.value)
    assert line.endswith("; set data_preprocessor.seg_pad_val=0"), line
    # the key it names is the one that reaches the model, and the label check then speaks
    with pytest.raises(ConfigError, match="set data_preprocessor.seg_pad_val=255"):
        check_label_settings(export_config([*DEMO, "data_preprocessor.seg_pad_val=0"]))


@pytest.mark.train
def test_a_class_weight_of_another_length_stops_the_command_before_training(capsys):
    """Through `python -m seglab`: one line, no checkpoint (it had failed at iteration 1)."""
    line = error_line([*DEMO, "+model.decode_head.loss_decode.class_weight=[1.0,2.0]"], capsys)
    assert "class_weight has 2 values: expected 4" in line


@pytest.mark.train
def test_a_secret_read_as_class_weights_stays_off_the_console(capsys, monkeypatch):
    """A class_weight from `${oc.env:...}` had reached mmengine.load, whose error Hydra
    printed with the secret in it, and left a run directory behind."""
    monkeypatch.setenv("SEGLAB_TEST_TOKEN", "tok-4f1e-secret")
    line = error_line(
        [*DEMO, "+model.decode_head.loss_decode.class_weight=${oc.env:SEGLAB_TEST_TOKEN}"],
        capsys,
    )
    assert "tok-4f1e-secret" not in line and "class_weight='masked-" in line, line
    assert not list(Path.cwd().glob("outputs/runs/*")), "a refused run leaves no directory"


def test_a_traceback_nobody_foresaw_is_masked_on_the_console(capsys, monkeypatch):
    """Around training, stderr masks the job's secrets: Hydra prints the traceback of an
    error seglab did not foresee there, with values as they resolved."""
    import traceback

    from seglab.masking import masked_stderr, remember_secrets

    remember_secrets(["+db.password=tok-77aa-secret"])
    with masked_stderr():
        try:
            raise TypeError("Unsupported format: tok-77aa-secret")
        except TypeError:
            traceback.print_exc()
    err = capsys.readouterr().err
    assert "Unsupported format: masked-" in err and "tok-77aa-secret" not in err, err


@pytest.mark.train
@pytest.mark.parametrize(
    ("overrides", "fix"),
    [
        pytest.param(
            ["+model.decode_head.out_channels=1", "model.auxiliary_head=null"],
            ["model.decode_head.out_channels=4"],
            id="one-channel-4-classes",
        ),
        pytest.param(
            ["+model.decode_head.out_channels=1", "model.auxiliary_head=null"],
            ["model.decode_head.loss_decode.use_sigmoid=true"],
            id="one-channel-2-classes",
        ),
    ],
)
def test_the_suggested_head_settings_train(tmp_path, overrides, fix, capsys):
    """The fix a one-channel line names trains two iterations with mmseg (use_sigmoid=true on
    one channel of a 4-class head had passed the check and failed in mmseg's loss)."""
    binary = fix[0].endswith("use_sigmoid=true")
    data = (
        [
            "dataset=custom",
            f"dataset.data_root={ade20k_folder(tmp_path / 'data', n=2, size=32)}",
            "dataset.classes=[background,road]",
            "dataset.palette=[[0,0,0],[128,64,128]]",
            "dataset.reduce_zero_label=false",
        ]
        if binary
        else []
    )
    args = [*(["experiment=demo"] if binary else DEMO), *data, *overrides, *SHORT]
    line = error_line(args, capsys)
    assert suggested(line.removeprefix("seglab: error: ")) == fix[0], line
    run_dir = train(applied(args, fix))
    assert (run_dir / "metrics.json").is_file()


def test_the_demo_and_a_two_class_sigmoid_head_pass():
    check_label_settings(export_config(DEMO))
    binary = export_config(
        [
            *DEMO,
            "+model.decode_head.out_channels=1",
            "model.decode_head.loss_decode.use_sigmoid=true",
            "model.auxiliary_head=null",
        ]
    )
    binary.model.decode_head.num_classes = 2
    check_label_settings(binary)
