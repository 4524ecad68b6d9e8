"""Distributed training: settings from the launcher's environment, and torchrun on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from seglab.checks.requirements import torchrun_world_size
from seglab.evaluate import evaluate_command as seglab_test
from seglab.run.distributed import apply_slurm_environment, fit_cpu_processes


def test_multi_task_jobs_use_the_slurm_launcher_and_a_port_of_their_own():
    cfgs, ports = [], []
    for job_id in ("4242", "4243"):
        env = {"SLURM_JOB_ID": job_id, "SLURM_NTASKS": "4"}
        cfg = Config({"launcher": "none"})
        apply_slurm_environment(cfg, env)
        cfgs.append(cfg.launcher)
        ports.append(env["MASTER_PORT"])
    assert cfgs == ["slurm", "slurm"] and len(set(ports)) == 2 and "29500" not in ports
    single = {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}
    cfg = Config({"launcher": "none"})
    apply_slurm_environment(cfg, single)
    assert cfg.launcher == "none" and "MASTER_PORT" not in single
    assert os.environ.get("MASTER_PORT") != ports[0]


def test_launch_rank_from_torchrun_or_slurm():
    from seglab.run.distributed import launch_rank

    assert launch_rank({}) == 0
    assert launch_rank({"SLURM_PROCID": "3"}) == 3
    assert launch_rank({"RANK": "1", "SLURM_PROCID": "0"}) == 1


@pytest.mark.train
@pytest.mark.processes
def test_torchrun_trains_one_run_with_two_cpu_processes(small_synthetic):
    """`torchrun --nproc_per_node=2 -m seglab ...` on CPU (gloo): DistributedDataParallel
    through mmengine, one run directory that rank 0 writes, and the run's config says so."""
    args = [
        *small_synthetic,
        "train_dataloader.batch_size=2",
        "train_cfg.max_iters=4",
        "train_cfg.val_interval=2",
        "default_hooks.checkpoint.interval=2",
    ]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cpu_only = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # gloo, also on a GPU machine
    done = subprocess.run(
        [*torchrun, "-m", "seglab", *args],
        env=cpu_only,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # rank 0 takes the run directory it broadcast: Hydra reports no callback failing to set it
    assert "ReadonlyConfigError" not in done.stderr and "Callback " not in done.stderr
    (run_dir,) = Path("outputs/runs").iterdir()  # not one per rank
    assert sorted(p.name for p in (run_dir / ".hydra").iterdir()) == [
        "config.yaml",
        "hydra.yaml",
        "overrides.yaml",
    ]
    (log,) = run_dir.glob("*/*.log")  # rank 0's
    text = log.read_text()
    assert "Distributed launcher: pytorch" in text and "Distributed training: True" in text
    assert "MMDistributedDataParallel" in text  # the model wrapper the Runner built
    assert Config.fromfile(str(run_dir / "config.py")).launcher == "pytorch"
    assert json.loads((run_dir / "metrics.json").read_text())["iter"] == 4
    assert (run_dir / "last_checkpoint").read_text().strip().endswith("iter_4.pth")
    assert done.stdout.count("final validation:") == 1  # printed by rank 0 only

    # interrupted after iteration 2, resumed by both ranks in the same directory
    (run_dir / "iter_4.pth").unlink()
    (run_dir / "last_checkpoint").write_text(str(run_dir / "iter_2.pth"))
    again = subprocess.run(
        [*torchrun, "-m", "seglab", *args, "resume=true"],
        env=cpu_only,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "ReadonlyConfigError" not in again.stderr
    assert [run_dir] == list(Path("outputs/runs").iterdir())
    logs = sorted(run_dir.glob("*/*.log"))
    assert len(logs) == 2 and "resumed epoch: 0, iter: 2" in logs[-1].read_text()
    assert (run_dir / "iter_4.pth").is_file()

    # `seglab test` evaluates the distributed run's checkpoint in one process
    record = seglab_test([f"run_dir={run_dir}"])
    assert record["mIoU"] == json.loads((run_dir / "metrics.json").read_text())["mIoU"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="what changes on a machine without a GPU")
def test_cpu_processes_get_no_device_ids_and_no_sync_bn():
    cfg = Config(
        {
            "launcher": "pytorch",
            "model": {
                "backbone": {"norm_cfg": {"type": "SyncBN"}},
                "heads": [{"norm_cfg": {"type": "SyncBN"}}],
            },
        }
    )
    changes = fit_cpu_processes(cfg)
    assert cfg.model_wrapper_cfg.device_ids is None
    assert cfg.model.backbone.norm_cfg.type == "BN" and cfg.model.heads[0].norm_cfg.type == "BN"
    assert changes == ["model_wrapper_cfg.device_ids=None", "SyncBN -> BN"]
    single = Config({"launcher": "none", "model": {"norm_cfg": {"type": "SyncBN"}}})
    assert fit_cpu_processes(single) == [] and single.model.norm_cfg.type == "SyncBN"


def test_torchrun_world_size_needs_all_of_torchruns_variables():
    env = {
        "RANK": "1",
        "LOCAL_RANK": "1",
        "WORLD_SIZE": "2",
        "MASTER_ADDR": "h",
        "MASTER_PORT": "1",
    }
    assert torchrun_world_size(env) == 2
    assert torchrun_world_size({k: v for k, v in env.items() if k != "MASTER_ADDR"}) == 0
