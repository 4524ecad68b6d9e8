"""Hydra multirun through seglab: isolated jobs, failures that do not end the sweep, relaunch."""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import re
import sys
import time
from pathlib import Path

import pytest
import torch

from seglab.checkpoint_loading import load_local_checkpoint
from seglab.cli import main
from seglab.config.compose import compose
from seglab.run_dirs.files import TRACEBACK_FILE
from seglab.run_dirs.names import run_name
from tests.helpers.commands import QUICK, job, sweep


@pytest.mark.train
def test_grid_jobs_write_only_to_their_own_directories():
    from mmengine.logging import MMLogger
    from mmengine.visualization import Visualizer

    code, summary = sweep([*QUICK, "optim_wrapper.optimizer.lr=0.004,0.002,0.001"])
    assert code == 0 and summary["failed"] == 0 and len(summary["jobs"]) == 3
    run_dirs = [Path(j["run_dir"]) for j in summary["jobs"]]
    assert len(set(run_dirs)) == 3
    for j, run_dir in zip(summary["jobs"], run_dirs, strict=True):
        lr = j["overrides"][-1].split("=")[1]
        assert run_dir.name == run_name(f"optim_wrapper.optimizer.lr={lr}")
        assert run_dir.name.startswith(f"lr={lr}-"), "named after what varies"
        assert (run_dir / "metrics.json").is_file() and (run_dir / "iter_4.pth").is_file()
        assert re.search(rf"lr={lr}\b", (run_dir / "config.py").read_text())
        (log,) = run_dir.glob("*/*.log")
        # (not the sweep's name in a path: `...,lr=0.004,0.002,0.001,...`)
        logged_lrs = set(re.findall(r"(?<![,/])lr=(0\.00\d)", log.read_text()))
        assert logged_lrs == {lr}, "a job's log holds its own config only"
        assert list(run_dir.glob("*/vis_data")), "each job has its own visualizer output"
    assert not Visualizer._instance_dict, "no visualizer survives its job"
    assert not MMLogger._instance_dict.keys() - {"mmengine"}, "nor a logger"


@pytest.mark.train
def test_a_failed_job_does_not_end_the_sweep(capsys):
    code, summary = sweep([*QUICK, "model.decode_head.loss_decode.loss_weight=1.0,nan,abc"])
    assert code == 1
    assert summary["failed"] == 2 and summary["finished"] == 1
    assert job(summary, "model.decode_head.loss_decode.loss_weight=1.0")["status"] == "finished"
    nan_job = job(summary, "model.decode_head.loss_decode.loss_weight=nan")
    assert nan_job["error"].startswith("FloatingPointError: loss is nan")
    bad_job = job(summary, "model.decode_head.loss_decode.loss_weight=abc")
    assert "expected a number" in bad_job["error"]
    printed = capsys.readouterr().out
    assert "1 finished, 2 failed;" in printed and "loss_weight=abc" in printed


@pytest.mark.train
def test_jobs_stop_their_loader_workers_when_they_end():
    """Finished or failed, a job stops its data loaders' persistent workers itself: left to the
    garbage collector, each worker cost a later job of the sweep 5 s."""
    workers = [
        f"{loader}.{key}"
        for loader in ("train_dataloader", "val_dataloader")
        for key in ("num_workers=2", "persistent_workers=true")
    ]
    before = set(multiprocessing.active_children())
    gc.disable()  # no help from the collector, whenever it would have run
    try:
        code, summary = sweep(
            [*QUICK, *workers, "model.decode_head.loss_decode.loss_weight=1.0,nan"]
        )
    finally:
        gc.enable()
    assert code == 1 and summary["finished"] == summary["failed"] == 1
    assert set(multiprocessing.active_children()) == before, "no worker outlives its job"


@pytest.mark.train
def test_fail_fast_stops_at_the_first_failure():
    code, summary = sweep(
        [*QUICK, "hydra.sweeper.fail_fast=true", "optim_wrapper.optimizer.lr=abc,0.004"]
    )
    assert code == 1
    assert [j["status"] for j in summary["jobs"]] == ["failed"]
    assert summary["not_run"] == 1


@pytest.mark.train
def test_a_failed_job_keeps_its_traceback_and_a_relaunch_keeps_the_finished_ones(capsys):
    """The failed job's full traceback is a file in its own directory, which the summary names;
    launched again with another hydra.* flag (fail_fast: it stops at the failure before it
    reaches the finished job), the summary still holds the finished job."""
    args = [*QUICK, "optim_wrapper.optimizer.lr=abc,0.004"]
    code, first = sweep(args)
    assert code == 1 and first["finished"] == first["failed"] == 1
    bad = job(first, "optim_wrapper.optimizer.lr=abc")
    trace = Path(bad["run_dir"]) / TRACEBACK_FILE
    assert bad["traceback"] == str(trace)
    text = trace.read_text()
    assert text.startswith("Traceback (most recent call last)")
    assert "optim_wrapper.optimizer.lr='abc'" in text
    assert bad["error"].splitlines()[0] in text
    assert f"(traceback: {trace})" in capsys.readouterr().out
    good = job(first, "optim_wrapper.optimizer.lr=0.004")
    assert not (Path(good["run_dir"]) / TRACEBACK_FILE).exists()

    code, second = sweep([*args, "hydra.sweeper.fail_fast=true"])
    assert code == 1 and second["not_run"] == 0, "the job not run had finished earlier"
    kept = job(second, "optim_wrapper.optimizer.lr=0.004")
    assert kept == {**good, "earlier": True}
    assert (second["finished"], second["failed"]) == (1, 1)
    assert "(an earlier launch)" in capsys.readouterr().out


@pytest.mark.train
def test_relaunch_skips_finished_jobs_and_resumes_interrupted_ones():
    args = [*QUICK, "optim_wrapper.optimizer.lr=0.004,0.002"]
    _, first = sweep(args)
    done, interrupted = (
        Path(job(first, f"optim_wrapper.optimizer.lr={lr}")["run_dir"]) for lr in ("0.004", "0.002")
    )
    # leave `interrupted` as a run stopped after its checkpoint at iteration 2
    (interrupted / "metrics.json").unlink()
    (interrupted / "iter_4.pth").unlink()
    (interrupted / "last_checkpoint").write_text(str(interrupted / "iter_2.pth"))

    # Hydra rewrites each job's .hydra/ on launch; what the job wrote must stay as it was
    def job_files(run_dir: Path) -> dict:
        return {
            p: p.stat().st_mtime_ns
            for p in run_dir.rglob("*")
            if p.is_file() and ".hydra" not in p.parts
        }

    done_files = job_files(done)

    code, second = sweep(args)
    assert code == 0 and second["failed"] == 0
    assert job_files(done) == done_files
    assert (
        job(second, "optim_wrapper.optimizer.lr=0.004")["mIoU"]
        == job(first, "optim_wrapper.optimizer.lr=0.004")["mIoU"]
    )
    logs = sorted(interrupted.glob("*/*.log"))
    assert "resumed epoch: 0, iter: 2" in logs[-1].read_text()
    assert json.loads((interrupted / "metrics.json").read_text())["iter"] == 4


@pytest.mark.train
def test_a_sweep_of_the_hydra_app_itself_is_named_after_its_overrides(monkeypatch, capsys):
    """`seglab.run.train.main()` is the Hydra app: called without `seglab` in front, its sweep goes
    where `seglab -m` puts the same sweep (which finds the jobs finished), its jobs are named
    after what varies, and neither leaves anything in os.environ."""
    from seglab.run import train

    def seglab_variables() -> dict:
        return {k: v for k, v in os.environ.items() if k.startswith("SEGLAB")}

    args = [*QUICK, "optim_wrapper.optimizer.lr=0.004,0.002"]
    before = seglab_variables()
    monkeypatch.setattr(sys, "argv", ["seglab", "-m", *args])
    train.main()
    # (the libraries that training imports for the first time set variables of their own)
    assert seglab_variables() == before
    (sweep_dir,) = Path("outputs/sweeps").iterdir()
    assert sweep_dir.name.startswith("experiment=demo,lr=0.004,0.002,max_iters=4,")
    lrs = ("0.004", "0.002")
    jobs = {sweep_dir.resolve() / run_name(f"optim_wrapper.optimizer.lr={lr}") for lr in lrs}
    assert all((j / "metrics.json").is_file() for j in jobs)

    capsys.readouterr()
    environ = dict(os.environ)
    code, summary = sweep(args)
    assert code == 0 and dict(os.environ) == environ
    assert {Path(j["run_dir"]) for j in summary["jobs"]} == jobs
    assert capsys.readouterr().out.count("finished earlier, skipped") == 2


def test_sweep_file_declares_the_swept_parameters():
    params = compose(["experiment=demo", "hparams_search=lr_grid"]).hydra.sweeper.params
    assert params["optim_wrapper.optimizer.lr"] == "0.004,0.002,0.001"


@pytest.mark.parametrize("bad", ["hparams_search=nope", "model=upernet_r50,nope"])
def test_unknown_options_stop_a_sweep_before_any_job(bad, capsys):
    with pytest.raises(SystemExit):
        main(["-m", *QUICK, bad])
    assert "nope" in capsys.readouterr().err
    assert not Path("outputs").exists()


@pytest.mark.train
@pytest.mark.processes
def test_parallel_jobs_give_the_results_of_jobs_run_one_by_one(tmp_path, monkeypatch):
    """Bitwise, with the same threads per job: joblib gives each of its 2 workers one of the
    2 cores, so the jobs run one by one get one thread too (CPU sums depend on the split)."""
    args = [*QUICK, "optim_wrapper.optimizer.lr=0.004,0.002"]
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    try:
        _, one_by_one = sweep(args)
    finally:
        torch.set_num_threads(threads)
    monkeypatch.chdir(tmp_path)
    code, parallel = sweep([*args, "hydra/launcher=cpu_parallel", "hydra.launcher.n_jobs=2"])
    assert code == 0
    for lr in ("0.004", "0.002"):
        key = f"optim_wrapper.optimizer.lr={lr}"
        ours, theirs = (Path(job(s, key)["run_dir"]) for s in (parallel, one_by_one))
        assert (ours / "metrics.json").read_text() == (theirs / "metrics.json").read_text()
        # the trained weights, not only a metric that might not have moved yet
        ours, theirs = (
            load_local_checkpoint(str(d / "iter_4.pth"))["state_dict"] for d in (ours, theirs)
        )
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)


@pytest.mark.train
def test_runs_started_in_the_same_second_share_no_mmengine_instance(tmp_path):
    """Two Runners built back to back in one process (well within one second)."""
    from mmengine.logging import MessageHub, MMLogger

    from seglab.run.train import build_runner, prepare_run, release_singletons

    cfg = compose(QUICK)
    choices = cfg.hydra.runtime.choices
    started = time.time()
    runners = []
    for name in ("a", "b"):
        mm_cfg = prepare_run(cfg, tmp_path / name, choices)
        runners.append(build_runner(mm_cfg))
    assert time.time() - started < 10
    a, b = runners
    assert a.experiment_name != b.experiment_name
    assert a.logger is not b.logger and a.message_hub is not b.message_hub
    assert a.visualizer is not b.visualizer
    assert Path(a.log_dir).parent == tmp_path / "a" and Path(b.log_dir).parent == tmp_path / "b"
    for runner in runners:
        release_singletons(runner.cfg)
    assert MessageHub._instance_dict.get(a.experiment_name) is None
    assert MMLogger._instance_dict.get(b.experiment_name) is None


def test_the_summary_line_of_a_job_starts_with_what_varies(tmp_path, capsys):
    """A sweep's command sets a dozen values alike for every job: a job's line shows the ones
    that vary (the learning rate here), not the shared ones before them."""
    from hydra_plugins.seglab_plugins._sweep import finish_sweep

    shared = [*QUICK, "dataset.classes=[road,car,person]", "dataset.data_root=/data/roads"]
    jobs = [
        {
            "overrides": [*shared, f"optim_wrapper.optimizer.lr={lr}"],
            "run_dir": str(tmp_path / f"lr={lr}"),
            "status": "finished",
            "mIoU": miou,
        }
        for lr, miou in (("0.01", 41.5), ("0.005", 43.25))
    ]
    finish_sweep(jobs, tmp_path)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:] == [
        "  finished optim_wrapper.optimizer.lr=0.01: mIoU=41.5",
        "  finished optim_wrapper.optimizer.lr=0.005: mIoU=43.25",
    ]
    kept = json.loads((tmp_path / "summary.json").read_text())["jobs"]
    assert [j["overrides"] for j in kept] == [j["overrides"] for j in jobs], "all kept there"
