"""seglab's compositions against the configs mmseg ships, with Config.fromfile on both sides."""

from __future__ import annotations

import pytest

from seglab.config.convert import export_config, write_config
from seglab.config.parity import differences, parity_differences
from tests.helpers.upstream_configs import plain_compositions

NAMED = {
    "upernet/upernet_r50_4xb4-80k_ade20k-512x512.py": [
        "model=upernet_r50",
        "dataset=ade20k",
        "schedule=80k",
    ],
    "pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py": [
        "model=pspnet_r50-d8",
        "dataset=cityscapes",
        "schedule=40k",
    ],
    "fcn/fcn_r50-d8_4xb4-20k_voc12aug-512x512.py": [
        "model=fcn_r50-d8",
        "dataset=pascal_voc12_aug",
        "schedule=20k",
    ],
    "segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py": [
        "experiment=segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512"
    ],
}
PLAIN = plain_compositions()


def export(overrides: list[str], path):
    return write_config(export_config(overrides), path)


@pytest.mark.parametrize("upstream", sorted(NAMED))
def test_named_configs_equal_upstream(upstream, tmp_path):
    assert parity_differences(export(NAMED[upstream], tmp_path / "ours.py"), upstream) == []


def test_plain_compositions_are_found():
    """The scan finds what it should: the named three and over a hundred more."""
    assert set(NAMED) - set(PLAIN) == {"segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py"}
    assert len(PLAIN) >= 100


@pytest.mark.slow
@pytest.mark.parametrize("upstream", sorted(PLAIN))
def test_every_plain_upstream_composition_equals_ours(upstream, tmp_path):
    assert parity_differences(export(PLAIN[upstream], tmp_path / "ours.py"), upstream) == []


def test_an_override_shows_up_as_a_difference(tmp_path):
    """The comparison can fail: a changed crop size differs in every place that uses it."""
    exported = export(
        NAMED["upernet/upernet_r50_4xb4-80k_ade20k-512x512.py"] + ["dataset.crop_size=[640,640]"],
        tmp_path / "ours.py",
    )
    diffs = parity_differences(exported, "upernet/upernet_r50_4xb4-80k_ade20k-512x512.py")
    assert any("pipeline[3].crop_size" in d for d in diffs)
    assert any(d.startswith("model.data_preprocessor.size") for d in diffs)


def test_differences_tells_a_tuple_from_a_list():
    assert differences({"a": (1, 2)}, {"a": [1, 2]}) == ["a: (1, 2) (tuple) != [1, 2] (list)"]
    assert differences({"a": 1}, {"a": 1.0}) != []
    assert differences({"a": {"b": 1}}, {"a": {"b": 1}}) == []
