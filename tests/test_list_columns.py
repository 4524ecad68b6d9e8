"""`seglab list`: the size column (upstream's training memory) and whether an experiment
downloads weights when it starts, read without composing or building anything."""

from __future__ import annotations

import time

import pytest

from seglab.cli import main as seglab_main
from seglab.config.convert import export_config
from seglab.config.pretrained import weight_sources
from seglab.zoo.index import start_config, start_weights

B0 = "segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512"
B5 = "segformer/segformer_mit-b5_8xb2-160k_ade20k-512x512"


def _table(out: str) -> dict[str, dict[str, str]]:
    """{experiment: {column: value}} from `seglab list`'s table (blank cells read as '')."""
    lines = [line for line in out.splitlines() if line and not line.startswith(" ")]
    header = lines[0]
    names = header.split()
    starts = [header.index(name) for name in names]
    rows = {}
    for line in lines[1:]:
        if "/" not in line.split(" ", 1)[0]:
            continue  # the legend and the count
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        rows[cells[0]] = dict(zip(names, cells, strict=True))
    return rows


def _list(capsys, *patterns: str) -> dict[str, dict[str, str]]:
    seglab_main(["list", *patterns])
    return _table(capsys.readouterr().out)


def test_segformer_b0_is_smaller_than_b5_and_both_download_their_backbone(capsys):
    rows = _list(capsys, "segformer", "ade20k-512x512")
    assert set(rows) >= {B0, B5}
    assert rows[B0]["mem(GB)"] == "2.1" and rows[B5]["mem(GB)"] == "7.2"
    sizes = [
        float(rows[f"segformer/segformer_mit-b{i}_8xb2-160k_ade20k-512x512"]["mem(GB)"])
        for i in range(6)
    ]
    assert sizes == sorted(sizes)
    assert {r["pretrained"] for r in rows.values()} == {"download"}


def test_a_tiny_unet_trains_from_scratch_and_deit_reads_a_local_file(capsys):
    unet = "unet/unet-s5-d16_fcn_4xb4-40k_drive-64x64"
    fcn = "fcn/fcn_r50-d8_4xb2-40k_cityscapes-512x1024"
    deit = "vit/vit_deit-s16_upernet_8xb2-80k_ade20k-512x512"
    rows = {**_list(capsys, unet), **_list(capsys, fcn), **_list(capsys, deit)}
    assert rows[unet]["pretrained"] == "none" and rows[fcn]["pretrained"] == "download"
    assert rows[deit]["pretrained"] == "file"
    assert float(rows[unet]["mem(GB)"]) < float(rows[fcn]["mem(GB)"])


@pytest.mark.parametrize(
    "name",
    [
        B0,
        B5,  # its checkpoint overrides the model option's init_cfg key by key
        "ann/ann_r101-d8_4xb2-40k_cityscapes-512x1024",  # a parent experiment's model
        "bisenetv2/bisenetv2_fcn_4xb4-ohem-160k_cityscapes-1024x1024",  # _delete_/model...
        "fastfcn/fastfcn_r50-d32_jpu_aspp_4xb2-80k_cityscapes-512x1024",
        "deeplabv3/deeplabv3_r101b-d8_4xb2-80k_cityscapes-512x1024",  # torchvision://
        "unet/unet-s5-d16_fcn_4xb4-40k_drive-64x64",
        "vit/vit_deit-s16_upernet_8xb2-80k_ade20k-512x512",
    ],
)
def test_the_weights_read_from_the_yaml_files_are_those_of_the_export(name):
    exported = export_config([f"experiment={name}"]).to_dict()
    sources = [source for _, source in weight_sources(exported)]
    assert [source for _, source in weight_sources(start_config(name))] == sources
    assert (start_weights(name) == "none") == (not sources)


def test_the_whole_list_stays_fast_and_a_filter_still_narrows_it(capsys):
    start = time.perf_counter()
    everything = _list(capsys)
    assert time.perf_counter() - start < 5  # 0.3 s where this was written
    assert len(everything) == 681
    assert all(r["pretrained"] in ("download", "file", "none") for r in everything.values())
    assert set(_list(capsys, "segformer", "b0")) == {
        n for n in everything if "segformer" in n and "b0" in n
    }


def test_help_and_a_pattern_that_matches_nothing(capsys):
    seglab_main(["list", "--help"])
    assert capsys.readouterr().out.startswith("usage: seglab list [PATTERN ...]")
    with pytest.raises(SystemExit) as exit_info:
        seglab_main(["list", "no-such-model"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no-such-model" in err
