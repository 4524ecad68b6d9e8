"""Run directories: named to be read, claimed atomically, resumed as meant, kept on
preemption."""

from __future__ import annotations

import json
import re
import shutil
import signal
from pathlib import Path

import pytest

from seglab.cli import main
from seglab.masking import mask_override
from seglab.run_dirs.names import run_name, sweep_name
from seglab.run_dirs.resume import resume_checkpoint
from tests.helpers.commands import (
    FEW_ITERS,
    QUICK,
    TRAINED_RUN,
    error_line,
    seglab_process,
    train,
)


def dirname(overrides: list[str]) -> str:
    """A single run's directory name, from its overrides as Hydra joins them (sorted)."""
    return run_name(",".join(sorted(overrides)))


def test_a_run_name_starts_with_what_tells_runs_apart():
    """The issue's run: alphabetical order and a cut at 80 characters had kept the intervals
    and lost the learning rate and max_iters."""
    overrides = [
        *(o for o in QUICK if not o.startswith("train_cfg.max_iters=")),
        "default_hooks.logger.interval=10",
        "optim_wrapper.optimizer.lr=0.01",
        "train_cfg.max_iters=40",
    ]
    name = dirname(overrides)
    parts = name.rsplit("-", 1)[0].split(",")
    assert parts[:3] == ["experiment=demo", "lr=0.01", "max_iters=40"], name
    assert "batch_size=4" in parts, "a changed value the name has room for"
    # housekeeping last: what is there of it comes after every other override
    kept = [i for i, p in enumerate(parts) if "interval=" in p or "workers=" in p]
    assert all(i > parts.index("batch_size=4") for i in kept), name
    assert len(name) <= 96 and re.fullmatch(r"[\w.=,+-]+-[0-9a-f]{8}", name), name


def test_numbers_are_short_and_the_hash_keeps_names_apart():
    """An Optuna trial's learning rate: 3 significant digits in the name, and two trials whose
    rates differ in the 19th digit still train in two directories."""
    a, b = (
        dirname(["experiment=demo", f"optim_wrapper.optimizer.lr={lr}"])
        for lr in ("0.0012345678901234567", "0.0012345678901234568")
    )
    assert a.startswith("experiment=demo,lr=0.00123-") and b.startswith(a[:-8])
    assert a != b
    assert dirname(["dataset.crop_size=[64,64]"]).startswith("crop_size=64x64-")
    # keys keep as many components as tell them apart
    both = dirname(["default_hooks.checkpoint.interval=2", "default_hooks.logger.interval=1"])
    assert both.startswith("checkpoint.interval=2,logger.interval=1-")


def test_the_same_overrides_always_give_the_same_name_and_secrets_stay_masked():
    """Sweeps find their earlier jobs by name; a masked secret is part of the name as masked."""
    secret = mask_override("+wandb.api_token=s3cr3t")
    overrides = ["experiment=demo", secret, "optim_wrapper.optimizer.lr=0.004"]
    assert dirname(overrides) == dirname(list(reversed(overrides)))
    assert secret.split("=")[1] in dirname(overrides) and "s3cr3t" not in dirname(overrides)
    assert dirname(["experiment=demo"]) == "experiment=demo", "a short plain name stays as it is"
    sweep = [
        "optim_wrapper.optimizer.lr=0.004,0.002",
        "train_cfg.max_iters=4",
        "model=fcn_unet-tiny",
    ]
    assert sweep_name(sweep) == sweep_name(list(reversed(sweep)))
    assert sweep_name(sweep).startswith("model=fcn_unet-tiny,lr=0.004,0.002,max_iters=4-")
    tokens = sweep_name(["+wandb.api_token=s3cr3t-a,s3cr3t-b", "experiment=demo"])
    assert "s3cr3t" not in tokens and "masked-" in tokens


@pytest.mark.train
@pytest.mark.processes
def test_two_identical_commands_started_together_train_apart(small_synthetic):
    args = [*small_synthetic, *FEW_ITERS, "train_cfg.max_iters=10"]
    processes = [seglab_process(args) for _ in range(2)]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
    run_dirs = sorted(Path("outputs/runs").iterdir())
    assert [p.name for p in run_dirs] == [run_dirs[0].name, f"{run_dirs[0].name}-2"]
    for run_dir in run_dirs:
        (log,) = run_dir.glob("*/*.log")
        logged = re.findall(r"Iter\(train\) \[\s*(\d+)/10\]", log.read_text())
        assert logged and len(logged) == len(set(logged)), "one run's iterations, each once"


@pytest.mark.train
@pytest.mark.processes
def test_sigterm_saves_a_checkpoint_and_the_run_continues_where_it_stopped(small_synthetic, capsys):
    args = [
        *small_synthetic,
        "train_cfg.max_iters=100000",
        "train_cfg.val_interval=100000",
        "default_hooks.checkpoint.interval=100000",
        "default_hooks.logger.interval=1",
    ]
    process = seglab_process(args)
    try:
        for line in process.stdout:  # trains until a few iterations are logged
            if "Iter(train) [     3/100000]" in line:
                break
        # the same command with resume=true while the run is alive: refused, nothing touched
        line = error_line([*args, "resume=true"], capsys, trained=True)
        assert "is being trained by another process" in line
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM
    assert "SIGTERM: saved iter_" in err.strip().splitlines()[-1]
    (run_dir,) = Path("outputs/runs").iterdir()
    saved = Path((run_dir / "last_checkpoint").read_text().strip())
    stopped_at = int(saved.stem.split("_")[1])
    assert saved.parent == run_dir.resolve() and stopped_at >= 3

    # continue that run with a changed override: resume=PATH names the run
    main([*args, f"train_cfg.max_iters={stopped_at + 2}", f"resume='{run_dir}'"])
    log = sorted(run_dir.glob("*/*.log"))[-1].read_text()
    assert f"resumed epoch: 0, iter: {stopped_at}" in log
    assert json.loads((run_dir / "metrics.json").read_text())["iter"] == stopped_at + 2


@pytest.mark.train
def test_resume_without_a_checkpoint_names_the_nearest_runs(trained_run_copy, capsys):
    earlier = trained_run_copy
    line = error_line(
        [*TRAINED_RUN, "train_cfg.max_iters=30", "resume=true"],
        capsys,
        trained=True,
    )
    assert "has no checkpoint" in line and str(earlier) in line and "resume=PATH" in line
    assert not list(Path("outputs/runs").glob("*/*/*.log"))[1:], "no second run started"


@pytest.mark.train
def test_a_truncated_last_checkpoint_gives_way_to_the_newest_intact_one(trained_run_copy, capsys):
    args, run_dir = TRAINED_RUN, trained_run_copy
    last = run_dir / "iter_20.pth"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    capsys.readouterr()
    main([*args, "resume=true"])
    assert "resuming from iter_10.pth, the newest intact checkpoint" in capsys.readouterr().out
    assert "resumed epoch: 0, iter: 10" in sorted(run_dir.glob("*/*.log"))[-1].read_text()


@pytest.mark.train
def test_a_copied_run_directory_tests_its_own_checkpoints(trained_run_copy):
    original = trained_run_copy
    copy = Path("copied-run")
    shutil.copytree(original, copy)
    shutil.rmtree(original)
    main(["test", f"run_dir={copy}"])
    tested = json.loads((copy / "test_metrics.json").read_text())
    assert Path(tested["checkpoint"]) == (copy / "iter_20.pth").resolve()


def test_a_copy_lacking_the_checkpoint_its_original_names_resumes_from_its_own(tmp_path):
    """mmengine's last_checkpoint holds an absolute path: in a copy it names the original's
    file. Where the copy lacks that file, it resumes from its own newest, never the other's."""
    import torch

    original, copy = tmp_path / "run", tmp_path / "copy"
    for run_dir, iters in ((original, (10, 20)), (copy, (10,))):
        run_dir.mkdir()
        for i in iters:
            torch.save({"meta": {"iter": i}}, run_dir / f"iter_{i}.pth")
        (run_dir / "last_checkpoint").write_text(str(original / "iter_20.pth"))
    checkpoint, why = resume_checkpoint(copy)
    assert checkpoint == copy / "iter_10.pth"
    assert why == f"last_checkpoint names {copy / 'iter_20.pth'}, which does not exist"


@pytest.mark.train
def test_a_run_without_validation_finishes_and_a_sweep_skips_it(small_synthetic, capsys):
    # mmengine's way: no validation loop, data or metric (the test split follows val's)
    no_val = ["val_cfg=null", "val_dataloader=null", "val_evaluator=null", "test_cfg=null"]
    run_dir = train([*small_synthetic, *FEW_ITERS, *no_val])
    assert json.loads((run_dir / "metrics.json").read_text()) == {"iter": 20, "mIoU": None}
    assert "without validation" in capsys.readouterr().out

    sweep = ["-m", *small_synthetic, *FEW_ITERS, *no_val, "randomness.seed=0,1"]
    main(sweep)
    main(sweep)
    assert capsys.readouterr().out.count("finished earlier, skipped") == 2


def test_run_names_keep_the_experiment_and_its_model():
    """Two zoo models on the same custom data: the name had been `dataset=custom-<hash>` for
    both (the experiment's 60-character name did not fit, the class names did)."""
    custom = [
        "dataset=custom",
        "dataset.classes=[road,car,person]",
        "dataset.palette=[[128,64,128],[0,0,142],[220,20,60]]",
        "dataset.data_root=/home/student/data/roads-2026",
        *(f"dataset.{k}_dir={k}_dir" for k in ("img", "ann")),  # mmseg's layout
        "train_cfg.max_iters=40",
    ]
    names = [
        dirname([f"experiment={e}", *custom])
        for e in (
            "deeplabv3plus/deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024",
            "bisenetv1/bisenetv1_r18-d32_4xb4-160k_cityscapes-1024x1024",
        )
    ]
    assert names[0].startswith("experiment=deeplabv3plus_r18-d8,dataset=custom,max_iters=40")
    assert names[1].startswith("experiment=bisenetv1_r18-d32,dataset=custom,max_iters=40")
    # the bulky values give way first: after every other override, if at all
    for name in names:
        parts = name.rsplit("-", 1)[0].split(",")
        assert parts.index("max_iters=40") == 2, name
        assert all(p.split("=")[0] in ("ann_dir", "img_dir", "classes") for p in parts[3:]), name
    assert dirname(["experiment=demo", "model=fcn_unet-tiny", "pretrained=false"]).startswith(
        "experiment=demo,model=fcn_unet-tiny,pretrained=false"
    )


def test_a_refused_command_leaves_no_directory(capsys):
    """Refused before training (weights that cannot be fetched): nothing under outputs/runs
    for `seglab report` to list as a run that never started; a directory holding a user's file
    is not the refused run's and stays."""
    args = ["experiment=demo", "model.pretrained=http://127.0.0.1:9/resnet18_v1c.pth"]
    error_line(args, capsys)
    assert list(Path("outputs/runs").iterdir()) == []
    kept = Path("outputs/runs") / dirname(args)
    kept.mkdir()
    (kept / "notes.txt").write_text("mine\n")
    error_line(args, capsys)
    assert [p.name for p in Path("outputs/runs").iterdir()] == [kept.name]
    assert (kept / "notes.txt").read_text() == "mine\n"
