"""Label settings that disagree with the head's class count are one line before training,
and the setting each line suggests is accepted (seglab/checks/label_settings.py)."""

from __future__ import annotations

import pytest

from seglab.checks.label_settings import check_label_settings
from seglab.config.convert import export_config
from seglab.errors import ConfigError
from tests.helpers.commands import SMALL_SYNTHETIC, error_line

DEMO = ["experiment=demo", *SMALL_SYNTHETIC]

CASES = [
    pytest.param(
        ["+model.decode_head.out_channels=1", "model.auxiliary_head=null"],
        "model.decode_head.loss_decode.use_sigmoid=False with one output channel",
        ["model.decode_head.loss_decode.use_sigmoid=true"],
        id="one-channel-softmax",
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


@pytest.mark.parametrize(("overrides", "said", "fix"), CASES)
def test_a_label_setting_against_the_class_count_is_one_line(overrides, said, fix):
    with pytest.raises(ConfigError) as refused:
        check_label_settings(export_config([*DEMO, *overrides]))
    line = str(refused.value)
    assert "\n" not in line and said in line, line
    assert suggested(line) == fix[0]
    check_label_settings(export_config([*DEMO, *overrides, *fix]))  # the fix it names works


@pytest.mark.train
def test_a_class_weight_of_another_length_stops_the_command_before_training(capsys):
    """Through `python -m seglab`: one line, no checkpoint (it had failed at iteration 1)."""
    line = error_line([*DEMO, "+model.decode_head.loss_decode.class_weight=[1.0,2.0]"], capsys)
    assert "class_weight has 2 values: expected 4" in line


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
