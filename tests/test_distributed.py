"""Distributed settings derived from the launcher's environment (no cluster needed)."""

from __future__ import annotations

import os

from seglab.distributed import apply_slurm_environment


def test_multi_task_jobs_use_the_slurm_launcher_and_a_port_of_their_own():
    from mmengine.config import Config

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
    from seglab.distributed import launch_rank

    assert launch_rank({}) == 0
    assert launch_rank({"SLURM_PROCID": "3"}) == 3
    assert launch_rank({"RANK": "1", "SLURM_PROCID": "0"}) == 1
