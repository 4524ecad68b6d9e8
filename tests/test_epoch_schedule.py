"""Epoch-based training (`schedule=epochs`, mmengine's EpochBasedTrainLoop): it trains, validates
and saves after every epoch, resumes and tests; the mixtures of epoch- and iteration-counting
parts that mmengine would run wrongly are refused in one line, whose fix passes; and an mmseg
config that trains by epochs imports and exports back to itself."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from mmengine.config import Config

from seglab.cli import main
from seglab.config.compose import CONF_DIR, compose
from seglab.config.convert import export_config
from seglab.errors import ConfigError
from seglab.report.runs import read_run
from seglab.run.train import finished_metrics, prepare_run
from tests.helpers.commands import REPO, SMALL_SYNTHETIC, error_line, train

# README's command (section "Training"); the tests add SMALL_SYNTHETIC: 4 iterations an epoch
EPOCHS = ["experiment=demo", "schedule=epochs", "train_cfg.max_epochs=2"]
EXPERIMENTS = CONF_DIR / "experiment"


def prepared(args: list[str], run_dir: Path) -> Config:
    """The path of `seglab ARGS` from the composed config through every check before training
    (train.prepare_run), up to the Runner: nothing trains."""
    cfg = compose(args)
    return prepare_run(cfg, run_dir, cfg.hydra.runtime.choices)


def test_the_readme_shows_the_command():
    assert f"python -m seglab {' '.join(EPOCHS)}" in (REPO / "README.md").read_text()


def test_the_epoch_schedule_switches_the_sampler_and_counts_epochs():
    """The schedule comes after the data set and the runtime in conf/config.yaml: its sampler
    and log_processor win; the data set's `shuffle` is kept."""
    mm = export_config(EPOCHS)
    assert mm.train_cfg == {"type": "EpochBasedTrainLoop", "max_epochs": 2, "val_interval": 1}
    assert mm.train_dataloader.sampler == {"type": "DefaultSampler", "shuffle": True}
    assert mm.param_scheduler[0]["end"] == 2 and mm.param_scheduler[0]["by_epoch"] is True
    assert mm.default_hooks.checkpoint.by_epoch is True
    assert mm.log_processor.by_epoch is True
    plain = export_config(["experiment=demo"])  # every other schedule: as upstream's
    assert plain.train_dataloader.sampler.type == "InfiniteSampler"
    assert plain.log_processor.by_epoch is False


@pytest.mark.train
def test_two_epochs_train_validate_save_resume_and_test(capsys):
    run_dir = train([*EPOCHS, *SMALL_SYNTHETIC])
    assert sorted(p.name for p in run_dir.glob("*.pth")) == ["epoch_1.pth", "epoch_2.pth"]
    assert Path((run_dir / "last_checkpoint").read_text()).name == "epoch_2.pth"
    # a validation after each epoch, logged against the training iteration (16 images, batch 4)
    (scalars,) = run_dir.glob("*/vis_data/scalars.json")
    records = [json.loads(line) for line in scalars.read_text().splitlines()]
    assert [r["step"] for r in records if "mIoU" in r] == [4, 8]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["iter"], metrics["epoch"]) == (8, 2) and metrics["mIoU"] is not None
    exported = Config.fromfile(str(run_dir / "config.py"))
    assert exported.train_cfg.type == "EpochBasedTrainLoop"
    assert exported.train_dataloader.sampler.type == "DefaultSampler"
    # finished, for a sweep launched again and for `seglab report`
    assert finished_metrics(run_dir, exported.train_cfg) == metrics
    assert read_run(run_dir, {})["status"] == "finished"

    capsys.readouterr()
    main([*EPOCHS, *SMALL_SYNTHETIC, "resume=true"])  # nothing left to train
    said = capsys.readouterr().out
    assert f"{run_dir.resolve()} finished all 2 epochs (epoch_2.pth, mIoU=" in said
    assert "train_cfg.max_epochs=N" in said
    assert len(list(run_dir.glob("*.pth"))) == 2

    longer = [a for a in EPOCHS if not a.startswith("train_cfg.max_epochs")]
    main([*longer, "train_cfg.max_epochs=3", *SMALL_SYNTHETIC, f"resume='{run_dir}'"])
    assert (run_dir / "epoch_3.pth").is_file()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["iter"], metrics["epoch"]) == (12, 3)

    main(["test", f"run_dir={run_dir}"])
    assert "epoch_3.pth" in capsys.readouterr().out
    assert json.loads((run_dir / "test_metrics.json").read_text())["mIoU"] is not None


@pytest.mark.train
def test_a_run_resumed_within_an_epoch_trains_only_what_is_left(capsys):
    """From a checkpoint saved within an epoch (Ctrl-C's or SIGTERM's, here a CheckpointHook's
    counting iterations, which mmengine runs in an epoch loop too), the resumed epoch passes
    over the batches it had trained; mmengine's loop trained them again (10 iterations, not 8,
    and the last ones past the end of the PolyLR converted to iterations)."""
    args = [
        *EPOCHS,
        *SMALL_SYNTHETIC,
        "default_hooks.checkpoint.by_epoch=false",
        "default_hooks.checkpoint.interval=6",
        "default_hooks.logger.interval=1",
    ]
    run_dir = train(args)
    assert sorted(p.name for p in run_dir.glob("*.pth")) == ["iter_6.pth", "iter_8.pth"]
    # the state of a run stopped at iteration 6, within its second epoch
    (run_dir / "iter_8.pth").unlink()
    (run_dir / "metrics.json").unlink()
    (run_dir / "last_checkpoint").write_text(str(run_dir / "iter_6.pth"))
    main([*args, "resume=true"])
    log = sorted(run_dir.glob("*/*.log"))[-1].read_text()
    assert "passing over the 2 batches it had trained" in log
    trained = re.findall(r"Epoch\(train\) \[(\d)\]\[(\d)/4\]", log)
    assert trained == [("2", "3"), ("2", "4")]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["iter"], metrics["epoch"]) == (8, 2)
    assert (run_dir / "iter_8.pth").is_file()


def test_without_last_checkpoint_the_newest_of_epoch_and_iteration_checkpoints_is_taken(tmp_path):
    """An epoch-based run stopped within an epoch holds `iter_N.pth` beside `epoch_E.pth`:
    their counts do not compare (iter_6 was saved before epoch_3), the times they were written
    do."""
    import os
    import zipfile

    from seglab.run_dirs.resume import resume_checkpoint

    for when, name in enumerate(["epoch_1.pth", "iter_6.pth", "epoch_2.pth", "epoch_3.pth"]):
        with zipfile.ZipFile(tmp_path / name, "w") as archive:  # intact, as torch writes it
            archive.writestr("data.pkl", b"")
        os.utime(tmp_path / name, ns=(when * 10**9, when * 10**9))
    checkpoint, why = resume_checkpoint(tmp_path)
    assert (checkpoint.name, why) == ("epoch_3.pth", "there is no last_checkpoint")


def test_an_infinite_sampler_under_an_epoch_loop_is_refused(tmp_path):
    """It never ends an epoch: the run trained on, never validating or saving (checked on the
    path before the Runner: before this check, the command trained until it was killed)."""
    args = [*EPOCHS, *SMALL_SYNTHETIC, "train_dataloader.sampler.type=InfiniteSampler"]
    with pytest.raises(ConfigError) as refused:
        prepared(args, tmp_path / "refused")
    line = str(refused.value)
    assert line.startswith("train_dataloader.sampler.type='InfiniteSampler': EpochBasedTrainLoop")
    fix = "train_dataloader.sampler.type=DefaultSampler"
    assert line.endswith(f"set {fix}")
    mm = prepared([*args, fix], tmp_path / "fixed")
    assert mm.train_dataloader.sampler.type == "DefaultSampler"


# (command-line overrides, the start of the line, [(a fix it suggests, the command with it)])
DEMO_SHORT = ["experiment=demo", "train_cfg.max_iters=2", "train_cfg.val_interval=2"]
REFUSED = [
    pytest.param(
        [*EPOCHS, "+train_cfg.max_iters=100"],
        "train_cfg.max_iters=100: EpochBasedTrainLoop counts epochs, not iterations",
        [
            (
                "drop it with ~train_cfg.max_iters and set the run's length with "
                "train_cfg.max_epochs=N",
                [*EPOCHS, "+train_cfg.max_iters=100", "~train_cfg.max_iters"],
            ),
            (
                "or train by iterations with schedule=short train_cfg.max_iters=100",
                ["experiment=demo", "schedule=short", "train_cfg.max_iters=100"],
            ),
        ],
        id="max_iters-added-to-an-epoch-loop",  # was a TypeError traceback from mmengine
    ),
    pytest.param(
        [*DEMO_SHORT, "+train_cfg.max_epochs=2"],
        "train_cfg.max_epochs=2: IterBasedTrainLoop counts iterations, not epochs",
        [
            (
                "drop it with ~train_cfg.max_epochs",
                [*DEMO_SHORT, "+train_cfg.max_epochs=2", "~train_cfg.max_epochs"],
            ),
            ("or train by epochs with schedule=epochs train_cfg.max_epochs=2", EPOCHS),
        ],
        id="max_epochs-added-to-an-iteration-loop",
    ),
    pytest.param(
        [*EPOCHS, "train_cfg.max_iters=100"],
        "train_cfg.max_iters=100: no key max_iters under train_cfg: its EpochBasedTrainLoop "
        "counts epochs (train_cfg.max_epochs=2)",
        [
            ("set train_cfg.max_epochs=N", EPOCHS),
            (
                "or train by iterations with schedule=short train_cfg.max_iters=100",
                ["experiment=demo", "schedule=short", "train_cfg.max_iters=100"],
            ),
        ],
        id="max_iters-with-schedule=epochs",
    ),
    pytest.param(
        ["experiment=demo", "train_cfg.max_epochs=2"],
        "train_cfg.max_epochs=2: no key max_epochs under train_cfg: its IterBasedTrainLoop "
        "counts iterations (train_cfg.max_iters=3000)",
        [
            ("set train_cfg.max_iters=N", DEMO_SHORT),
            ("or train by epochs with schedule=epochs train_cfg.max_epochs=2", EPOCHS),
        ],
        id="max_epochs-without-schedule=epochs",
    ),
    pytest.param(
        [*DEMO_SHORT, "param_scheduler.0.by_epoch=true"],
        "param_scheduler.0.by_epoch=true: IterBasedTrainLoop (train_cfg.type) has one epoch",
        [
            ("set param_scheduler.0.by_epoch=false", DEMO_SHORT),
            (
                "or +param_scheduler.0.convert_to_iter_based=true",
                [
                    *DEMO_SHORT,
                    "param_scheduler.0.by_epoch=true",
                    "+param_scheduler.0.convert_to_iter_based=true",
                ],
            ),
        ],
        id="scheduler-by-epoch-in-an-iteration-loop",  # trained at a constant rate
    ),
    pytest.param(
        [*DEMO_SHORT, "~param_scheduler.0.by_epoch"],
        "param_scheduler.0.by_epoch=true (mmengine's default): IterBasedTrainLoop",
        [
            (
                "set +param_scheduler.0.by_epoch=false",
                [*DEMO_SHORT, "~param_scheduler.0.by_epoch", "+param_scheduler.0.by_epoch=false"],
            ),
        ],
        id="scheduler-without-by_epoch-in-an-iteration-loop",
    ),
    pytest.param(
        [*DEMO_SHORT, "default_hooks.checkpoint.by_epoch=true"],
        "default_hooks.checkpoint.by_epoch=true: IterBasedTrainLoop (train_cfg.type) has one "
        "epoch, which ends with the run, so CheckpointHook would save one checkpoint",
        [("set default_hooks.checkpoint.by_epoch=false", DEMO_SHORT)],
        id="checkpoint-by-epoch-in-an-iteration-loop",  # saved epoch_1.pth at the end only
    ),
    pytest.param(
        [*DEMO_SHORT, "~default_hooks.checkpoint.by_epoch"],
        "default_hooks.checkpoint.by_epoch=true (its default): IterBasedTrainLoop",
        [
            (
                "set +default_hooks.checkpoint.by_epoch=false",
                [
                    *DEMO_SHORT,
                    "~default_hooks.checkpoint.by_epoch",
                    "+default_hooks.checkpoint.by_epoch=false",
                ],
            ),
        ],
        id="checkpoint-without-by_epoch-in-an-iteration-loop",
    ),
]


@pytest.mark.parametrize(("overrides", "said", "fixes"), REFUSED)
def test_a_loop_mixture_is_one_line_and_its_fixes_pass(overrides, said, fixes, capsys, tmp_path):
    """Before these checks, each of them trained (at a constant rate, with one checkpoint at
    the end) or stopped in a traceback; each fix the line suggests passes every check."""
    line = error_line([*overrides, *SMALL_SYNTHETIC], capsys)
    assert line.startswith(f"seglab: error: {said}"), line
    for i, (fix, command) in enumerate(fixes):
        assert fix in line, (fix, line)
        prepared([*command, *SMALL_SYNTHETIC], tmp_path / str(i))


def test_a_zoo_schedule_that_follows_max_iters_under_an_epoch_loop_names_the_value():
    """SegFormer's schedulers end at `${train_cfg.max_iters}`, which `schedule=epochs` lacks."""
    from seglab.checks.training_loop import check_training_loop

    segformer = "experiment=segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512"
    with pytest.raises(ConfigError) as refused:
        export_config([segformer, "schedule=epochs"])
    assert str(refused.value) == (
        "param_scheduler.1.end=${train_cfg.max_iters}: the training loop (EpochBasedTrainLoop) "
        "counts epochs (train_cfg.max_epochs=12), so there is no train_cfg.max_iters; set "
        "param_scheduler.1.end in iterations itself (param_scheduler.1.end=N)"
    )
    mm = export_config([segformer, "schedule=epochs", "param_scheduler.1.end=20000"])
    check_training_loop(mm)  # an iteration-stepped scheduler in an epoch loop: as meant
    assert mm.train_cfg.type == "EpochBasedTrainLoop" and mm.param_scheduler[1]["end"] == 20000


EPOCH_CONFIG = """
_base_ = ['mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py']
train_dataloader = dict(sampler=dict(type='DefaultSampler', shuffle=True))
train_cfg = dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=24, val_interval=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=500),
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=24, by_epoch=True,
         convert_to_iter_based=True),
]
default_hooks = dict(
    logger=dict(log_metric_by_epoch=True),
    checkpoint=dict(by_epoch=True, interval=2, max_keep_ckpts=3))
log_processor = dict(by_epoch=True)
"""


@pytest.fixture
def imported_name(repository_configs):
    """A fresh experiment name under experiments/; it and any conf/_delete_ file the import
    adds are removed afterwards."""
    before = set((CONF_DIR / "_delete_").glob("*.yaml"))
    name = f"imported-epochs-{uuid.uuid4().hex[:8]}"
    yield name
    (EXPERIMENTS / f"{name}.yaml").unlink(missing_ok=True)
    for path in set((CONF_DIR / "_delete_").glob("*.yaml")) - before:
        path.unlink()


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param("", id="warmup-and-converted-poly"),
        # one scheduler, upstream's count: it was `train_cfg.max_iters=no such key: seglab's
        # YAML cannot express it`
        pytest.param(
            "param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=24, "
            "by_epoch=True)]\n",
            id="one-poly-by-epoch",
        ),
    ],
)
def test_an_epoch_based_config_imports_and_exports_back(tmp_path, imported_name, changes, capsys):
    path = tmp_path / "my_epochs.py"
    path.write_text(EPOCH_CONFIG + changes)
    main(["import", str(path), f"out={EXPERIMENTS}/{imported_name}.yaml"])
    assert "exports a config equal to" in capsys.readouterr().out  # the parity rule, checked
    text = (EXPERIMENTS / f"{imported_name}.yaml").read_text()
    assert "override /schedule: epochs" in text and "max_iters" not in text
    # the schedule's end follows the run's length, as in a zoo experiment
    mm = export_config([f"experiment={imported_name}", "train_cfg.max_epochs=6"])
    assert mm.train_cfg.max_epochs == 6 and mm.param_scheduler[-1]["end"] == 6
