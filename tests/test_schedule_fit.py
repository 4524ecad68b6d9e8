"""A run shorter than its schedule's milestones (a first try of a zoo model with
`train_cfg.max_iters=40`) gets them scaled into the run, and mmengine builds its schedule."""

from __future__ import annotations

import pytest
import torch
from mmengine.optim.scheduler import _ParamScheduler
from omegaconf import OmegaConf

from seglab.config.compose import compose
from seglab.config.convert import export_config, run_config, to_container
from seglab.config.schedule_fit import fit_milestones
from tests.helpers.commands import ZOO_SHORT_RUN, train

SEGFORMER = "experiment=segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512"  # warmup 1500
BISENET = "experiment=bisenetv1/bisenetv1_r18-d32_4xb4-160k_cityscapes-1024x1024"  # 1000
KNET = "experiment=knet/knet-s3_r50-d8_upernet_8xb2-adamw-80k_ade20k-512x512"  # MultiStepLR


def fitted(experiment: str, *overrides: str):
    mm = export_config([experiment, *overrides])
    return mm, fit_milestones(mm, to_container(compose([experiment])))


def build_schedule(mm) -> list[_ParamScheduler]:
    """The schedulers of `mm`, as the Runner builds them (mmengine refuses end <= begin);
    mmseg's registry holds mmengine's and mmseg's own (PolyLRRatio)."""
    import mmseg.engine  # noqa: F401  (registers mmseg's schedulers)
    from mmseg.registry import PARAM_SCHEDULERS

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    schedulers = mm.param_scheduler
    schedulers = schedulers if isinstance(schedulers, list) else [schedulers]
    return [PARAM_SCHEDULERS.build({**s, "optimizer": optimizer}) for s in schedulers]


def test_a_short_run_fits_the_warmup_and_builds():
    mm, change = fitted(SEGFORMER, "train_cfg.max_iters=40")
    assert change == (
        "param_scheduler.0.end=1, param_scheduler.1.begin=1, param_scheduler.0.start_factor=1 "
        "(milestones scaled by max_iters=40/160000, upstream's; a warmup under 20 iterations "
        "is none)"
    )
    linear, poly = build_schedule(mm)
    assert (linear.begin, linear.end, poly.begin, poly.end) == (0, 1, 1, 40)


@pytest.mark.parametrize(
    ("experiment", "max_iters"),
    [(SEGFORMER, 20), (SEGFORMER, 400), (BISENET, 20), (BISENET, 900)],
)
def test_after_a_fitted_warmup_the_run_trains_at_its_rate(experiment, max_iters):
    """mmengine's LinearLR over N iterations ends at (N-1)/N of its way, and PolyLR goes on from
    there: a 20-iteration SegFormer run had trained at 1e-6 of its rate throughout, BiSeNetV1's
    at a tenth. Fitted warmups of under 20 iterations are none."""
    mm, change = fitted(experiment, f"train_cfg.max_iters={max_iters}")
    assert change is not None
    schedulers = build_schedule(mm)
    optimizer = schedulers[0].optimizer
    base = optimizer.param_groups[0]["initial_lr"]
    warmup_end = schedulers[0].end
    for _ in range(warmup_end):
        for scheduler in schedulers:
            scheduler.step()
    after = optimizer.param_groups[0]["lr"]
    poly_left = (1 - warmup_end / max_iters) ** 1.0  # PolyLR has decayed a little by then
    assert after >= 0.95 * base * poly_left, (after, base)


def test_a_run_long_enough_keeps_every_milestone():
    mm, change = fitted(SEGFORMER, "train_cfg.max_iters=8000")
    assert change is None and mm.param_scheduler[0].end == 1500


@pytest.mark.parametrize(
    "experiment, max_iters, expected",
    [
        (SEGFORMER, 400, [(0, 4), (4, 400)]),  # 1% of the run, as upstream's 1500 of 160000
        (BISENET, 2, [(0, 1), (1, 2)]),
        (KNET, 40, [(0, 1), (1, 40)]),
    ],
)
def test_every_scheduler_builds_inside_the_run(experiment, max_iters, expected):
    mm, change = fitted(experiment, f"train_cfg.max_iters={max_iters}")
    assert change is not None
    schedulers = build_schedule(mm)
    assert [(s.begin, s.end) for s in schedulers] == expected
    if experiment == KNET:  # its step milestones of 60000 and 72000 in 80000: 30 and 36
        assert list(schedulers[1].milestones) == [30, 36]


def test_a_milestone_the_command_line_sets_is_kept():
    mm, change = fitted(SEGFORMER, "train_cfg.max_iters=40", "param_scheduler.0.end=10")
    assert mm.param_scheduler[0].end == 10 and "param_scheduler.0.end" not in change
    assert mm.param_scheduler[1].begin == 1


@pytest.mark.parametrize(
    "overrides",
    [
        ["experiment=demo", "schedule=epochs", "train_cfg.max_epochs=2"],
        # SegFormer's iteration-stepped warmup (1500) and PolyLR in an epoch loop: as they are
        [SEGFORMER, "schedule=epochs", "param_scheduler.1.end=20000"],
    ],
)
def test_an_epoch_based_run_keeps_its_schedule_and_builds(overrides):
    """An epoch-based run has no max_iters to fit milestones into: nothing is scaled, and
    mmengine builds its schedule (the checks before training accept it)."""
    from seglab.checks.training_loop import check_training_loop

    mm = export_config(overrides)
    before = [dict(s) for s in mm.param_scheduler]
    assert fit_milestones(mm, to_container(compose([overrides[0]]))) is None
    assert [dict(s) for s in mm.param_scheduler] == before
    check_training_loop(mm)
    mm.param_scheduler = [
        {k: v for k, v in s.items() if k != "convert_to_iter_based"} for s in mm.param_scheduler
    ]  # built by epoch here; the Runner converts it with its loader's length
    assert [s.end for s in build_schedule(mm)] == [s["end"] for s in mm.param_scheduler]


@pytest.mark.train
def test_a_zoo_model_with_a_warmup_trains_a_short_run(capsys):
    """SegFormer's 1500-iteration warmup in a 2-iteration run: said in one line, trained, and
    written into the run's config.py (what ran)."""
    run_dir = train([SEGFORMER, *ZOO_SHORT_RUN, "pretrained=false"])
    out = capsys.readouterr().out
    said = "seglab: a run shorter than its schedule's milestones: set param_scheduler.0.end=1"
    assert said in out
    exported = (run_dir / "config.py").read_text()
    assert "seglab set param_scheduler.0.end=1, param_scheduler.1.begin=1" in exported
    assert (run_dir / "metrics.json").is_file()


def _short_runs_of(experiments: list[str]) -> list[tuple[str, str]]:
    """(experiment, why) of those whose 40-iteration run mmengine would not schedule, or whose
    sliding-window validation or label settings seglab would refuse."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from seglab.checks.before_training import check_sliding_window
    from seglab.checks.label_settings import check_label_settings
    from seglab.checks.training_loop import check_training_loop
    from seglab.config.compose import CONF_DIR

    failures = []
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        for experiment in experiments:
            try:
                # composed once: the reference, then the value train_cfg.max_iters=40 sets
                # (its links follow, as with the override; `fitted` composes three times)
                cfg = compose([experiment])
                reference = to_container(cfg)
                OmegaConf.update(cfg, "train_cfg.max_iters", 40)
                mm = run_config(cfg)
                fit_milestones(mm, reference)
                build_schedule(mm)
                check_sliding_window(mm)  # upstream's own windows: no stride past the window
                check_label_settings(mm)  # upstream's own weights, padding, ignore index
                check_training_loop(mm)  # upstream's loops, samplers, schedulers, checkpoints
            except Exception as err:  # noqa: BLE001 (each failure is listed, not the first)
                failures.append((experiment, f"{type(err).__name__}: {err}"))
    GlobalHydra.instance().clear()
    return failures


@pytest.mark.slow
def test_every_zoo_experiment_schedules_a_40_iteration_run():
    """All 681, up to building the Runner's schedule: no milestone beyond max_iters reaches
    mmengine (two processes, one per core)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from seglab.zoo.generate import experiment_name, upstream_configs

    experiments = [f"experiment={experiment_name(rel)}" for rel in upstream_configs()]
    assert len(experiments) == 681
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        halves = pool.map(_short_runs_of, [experiments[0::2], experiments[1::2]])
        failures = [f for half in halves for f in half]
    assert failures == []
