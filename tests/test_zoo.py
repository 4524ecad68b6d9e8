"""mmseg's whole config zoo: every upstream config an experiment at parity, every `_base_` file a
group option under upstream's name, the shared values reaching every use, the files generated."""

from __future__ import annotations

import filecmp
import multiprocessing
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import hydra
import pytest
from hydra.core.global_hydra import GlobalHydra
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seglab.cli import main as seglab_main
from seglab.config.compose import CONF_DIR, group_options
from seglab.config.convert import export_config, write_config
from seglab.config.parity import UPSTREAM_CONFIGS, parity_differences
from seglab.zoo.generate import REPO, experiment_name, generate, option_name, upstream_configs

UPSTREAM = upstream_configs()
FAMILIES = sorted({rel.split("/")[0] for rel in UPSTREAM})
BASES = sorted(
    str(p.relative_to(UPSTREAM_CONFIGS)) for p in (UPSTREAM_CONFIGS / "_base_").glob("*/*.py")
)
DATASETS = sorted(o for b in BASES if (o := option_name(b)) and o[0] == "dataset")
SCHEDULES = sorted(o for b in BASES if (o := option_name(b)) and o[0] == "schedule")


def export(overrides: list[str]):
    return export_config(overrides)


def test_every_upstream_config_and_base_file_is_an_option():
    assert len(UPSTREAM) == 681
    assert {experiment_name(r) for r in UPSTREAM} <= set(group_options("experiment"))
    for base in BASES:
        named = option_name(base)
        if named:
            assert named[1] in group_options(named[0]), base
    assert len(DATASETS) == 30 and len(SCHEDULES) == 7
    assert len([b for b in BASES if "/models/" in b]) == 50


def _parity_of(rels: list[str]) -> dict[str, list[str]]:
    """{config: its first differences} for those that differ; one Hydra, files read once."""
    failures = {}
    GlobalHydra.instance().clear()
    with tempfile.TemporaryDirectory() as tmp:
        with hydra.initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            for rel in rels:
                mm = export_config([f"experiment={experiment_name(rel)}"])
                diffs = parity_differences(write_config(mm, Path(tmp) / "x.py"), rel)
                if diffs:
                    failures[rel] = diffs[:3]
    GlobalHydra.instance().clear()
    return failures


@pytest.mark.slow
def test_every_upstream_config_exports_at_parity():
    """All 681: Config.fromfile on both sides, every key the Runner reads, values and types
    (two processes, one per core)."""
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        halves = pool.map(_parity_of, [UPSTREAM[0::2], UPSTREAM[1::2]])
        failures = {k: v for half in halves for k, v in half.items()}
    assert failures == {}


# four data sets of different kinds in the fast tier, all of them in `make test`
SAMPLED_DATASETS = {"ade20k", "cityscapes_769x769", "pascal_voc12_aug", "synapse"}


@pytest.mark.parametrize(
    "dataset",
    [o if o in SAMPLED_DATASETS else pytest.param(o, marks=pytest.mark.slow) for _, o in DATASETS],
)
@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    crop=st.tuples(st.integers(16, 2048), st.integers(16, 2048)),
    classes=st.integers(1, 300),
)
def test_dataset_shared_values_reach_every_use(dataset, crop, classes):
    mm = export(
        [
            "model=upernet_r50",
            f"dataset={dataset}",
            f"dataset.crop_size=[{crop[0]},{crop[1]}]",
            "dataset.data_root=/data/elsewhere",
            f"dataset.num_classes={classes}",
        ]
    )
    assert mm.data_preprocessor.size == crop and mm.model.data_preprocessor.size == crop
    for head in (mm.model.decode_head, mm.model.auxiliary_head):
        assert head.num_classes == classes
    loaders = [mm.train_dataloader, mm.val_dataloader, mm.test_dataloader]
    leaves = [d for loader in loaders for d in _leaf_datasets(loader.dataset)]
    assert leaves and all(d["data_root"] == "/data/elsewhere" for d in leaves)
    crops = [s for d in leaves for s in d.get("pipeline", []) if s["type"] == "RandomCrop"]
    assert all(s["crop_size"] == crop for s in crops)
    pads = [s for d in leaves for s in d.get("pipeline", []) if s["type"] == "Pad"]
    assert all(s["size"] == crop for s in pads)


def _leaf_datasets(dataset: dict) -> list[dict]:
    if "datasets" in dataset:
        return [d for sub in dataset["datasets"] for d in _leaf_datasets(sub)]
    if "dataset" in dataset:
        return _leaf_datasets(dataset["dataset"])
    return [dataset]


@pytest.mark.parametrize("schedule", [o for _, o in SCHEDULES])
def test_max_iters_moves_the_end_of_every_schedule(schedule):
    mm = export([f"schedule={schedule}", "train_cfg.max_iters=1234"])
    assert mm.train_cfg.max_iters == 1234
    assert mm.param_scheduler[-1]["end"] == 1234


def test_an_upstream_disagreement_is_kept_and_said():
    """Upstream's dark-zurich test loader is not its val loader: written out, with a note."""
    name = "pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024_dark-zurich-1920x1080"
    text = (CONF_DIR / "experiment" / f"{name}.yaml").read_text()
    assert "# upstream: test_dataloader" in text
    mm = export([f"experiment={name}", "dataset.data_root=/data/cs"])
    assert mm.val_dataloader.dataset.data_root == "/data/cs"
    assert mm.test_dataloader.dataset.data_root == "data/dark_zurich/"


@pytest.mark.parametrize(
    ("typo", "closest"),
    [
        ("segformer/segformer_mit-b9_8xb2-160k_ade20k-512x512", "segformer/segformer_mit-b"),
        (
            "segformer/segformer_mit-b5_8xb2-160k_ade20k-640x460",
            "segformer/segformer_mit-b5_8xb2-160k_ade20k-640x640",
        ),
        (
            "segformer_mit-b5_8xb2-160k_ade20k-640x640",
            "segformer/segformer_mit-b5_8xb2-160k_ade20k-640x640",
        ),
    ],
)
def test_a_misspelt_experiment_names_the_closest(typo, closest, capsys):
    with pytest.raises(SystemExit) as exit_info:
        seglab_main(["export", f"experiment={typo}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    suggested = err.split("did you mean ", 1)[1].rstrip("?").split(", ")
    assert 1 <= len(suggested) <= 5  # a few names, not 681
    assert suggested[0].startswith(closest)


def test_seglab_list_prints_the_published_numbers(capsys):
    seglab_main(["list", "segformer", "ade20k-640x640"])
    out = capsys.readouterr().out
    assert "segformer/segformer_mit-b5_8xb2-160k_ade20k-640x640" in out
    assert "640x640" in out and "160000" in out
    assert "weights: https://download.openmmlab.com/" in out
    assert "1 experiments" in out


@pytest.mark.slow
def test_committed_files_equal_what_the_generator_writes(tmp_path, repository_configs):
    """`make zoo` run afresh writes exactly the committed files (and no others)."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "conf", root / "conf", symlinks=True)
    shutil.copytree(REPO / "experiments", root / "experiments")
    for path in _files(root / "conf") + _files(root / "experiments"):
        if "by `make zoo`" in path.read_text()[:400]:
            path.unlink()
    notes = generate(root)
    assert not [n for n in notes.values() if n and n[0].startswith("FAILED")]
    for folder in ("conf", "experiments"):
        mismatch = _tree_differences(REPO / folder, root / folder)
        assert mismatch == [], mismatch[:5]


def _files(folder: Path) -> list[Path]:
    """Files under `folder`, not through conf/experiment (a link to experiments/)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not p.is_symlink()
        and "experiment" not in p.relative_to(folder).parts[:1]
    )


def _tree_differences(ours: Path, fresh: Path) -> list[str]:
    out = []
    for a in _files(ours):
        b = fresh / a.relative_to(ours)
        if not b.is_file() or not filecmp.cmp(a, b, shallow=False):
            out.append(str(a.relative_to(ours)))
    out += [f"only fresh: {p}" for p in _files(fresh) if not (ours / p.relative_to(fresh)).exists()]
    return out
