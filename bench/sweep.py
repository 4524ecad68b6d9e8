"""What a job costs in a sweep (`seglab -m`, jobs one after another in one process), against the
same job run alone in a fresh process.

The job is the demo's model on small synthetic data, with two persistent workers per data loader
(upstream's configs keep their workers). Each command runs in a fresh process and directory:

- alone: `python -m seglab OVERRIDES`; its own work is the time from Hydra's start of the job
  (it writes the run's .hydra/) to the run's final metrics.json, the rest is process start-up;
- sweeps of 1 and of N jobs that differ only in the learning rate; a job's marginal cost in a
  sweep is (sweep of N - sweep of 1) / (N - 1): what one more job adds to the sweep.

Each process trains on one thread: what a sweep wastes is idle time, and torch's threads spin
on a machine shared with other work, which made the same job 20 times slower at random. The
first job of a process also warms caches up, so a later job can cost less than one alone.

    python bench/sweep.py [--jobs 3] [--iters 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LEARNING_RATES = ["0.002", "0.001", "0.0005", "0.00025", "0.000125"]


def overrides(iters: int) -> list[str]:
    loaders = [
        f"{loader}.{key}"
        for loader in ("train_dataloader", "val_dataloader")
        for key in ("num_workers=2", "persistent_workers=true")
    ]
    return [
        "experiment=demo",
        "dataset.synthetic.num_train=16",
        "dataset.synthetic.num_val=4",
        "dataset.synthetic.image_size=64",
        "train_dataloader.batch_size=4",
        *loaders,
        f"train_cfg.max_iters={iters}",
        f"train_cfg.val_interval={iters}",
        f"default_hooks.checkpoint.interval={iters}",
        "default_hooks.logger.interval=10",
    ]


def timed(args: list[str], work: Path) -> tuple[float, Path]:
    """Run `python -m seglab ARGS` in a fresh directory under WORK; its seconds and directory."""
    cwd = Path(tempfile.mkdtemp(dir=work))
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "seglab", *args],
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start, cwd


def own_work(run_dir: Path) -> float:
    """From Hydra's start of the job to the run's final validation metrics."""
    started = (run_dir / ".hydra" / "config.yaml").stat().st_mtime
    return (run_dir / "metrics.json").stat().st_mtime - started


def sweep_runs(cwd: Path) -> list[Path]:
    (summary,) = (cwd / "outputs" / "sweeps").glob("*/summary.json")
    return [Path(cwd, job["run_dir"]) for job in json.loads(summary.read_text())["jobs"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3, choices=range(2, len(LEARNING_RATES) + 1))
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="seglab-bench-sweep-"))
    os.environ["SEGLAB_CACHE"] = str(work / "cache")  # the synthetic data, made once
    os.environ["OMP_NUM_THREADS"] = "1"
    base = overrides(args.iters)
    timed(base, work)  # warm-up: generates the data, fills the file caches
    alone, alone_cwd = timed(base, work)
    (run_dir,) = (alone_cwd / "outputs" / "runs").iterdir()
    alone_work = own_work(run_dir)
    one, _ = timed(["-m", *base, f"optim_wrapper.optimizer.lr={LEARNING_RATES[0]}"], work)
    rates = ",".join(LEARNING_RATES[: args.jobs])
    many, many_cwd = timed(["-m", *base, f"optim_wrapper.optimizer.lr={rates}"], work)
    spans = ", ".join(f"{own_work(d):.2f}" for d in sweep_runs(many_cwd))
    marginal = (many - one) / (args.jobs - 1)

    n = args.jobs
    rows = [
        ("job alone, fresh process", alone, "the whole `python -m seglab` process"),
        ("  its own work", alone_work, "Hydra's start of the job to its final metrics.json"),
        ("sweep of 1 job", one, "`python -m seglab -m`, the whole process"),
        (f"sweep of {n} jobs", many, f"each job's own work in it: {spans} s"),
        ("marginal cost of a job", marginal, f"(sweep of {n} - sweep of 1) / {n - 1}"),
        ("  minus its own work", marginal - alone_work, "target: at most 1 s"),
    ]
    for name, seconds, note in rows:
        print(f"{name:26}{seconds:8.2f} s   {note}")
    print(f"({args.iters} iterations per job, 2 persistent workers per loader; {work})")


if __name__ == "__main__":
    main()
