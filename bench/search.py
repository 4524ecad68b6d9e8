"""An Optuna search of trials whose costs differ: one sweeper in batches against workers that
share one study.

The same 8 trials (the demo model on small synthetic data; two of them train LONG iterations,
six SHORT ones: `train_cfg.max_iters` is in the search space, and the trials are queued in the
study beforehand so that every arrangement runs the same ones, in the same order) run as:

- batched: one sweeper, `n_jobs=2 batched=true` with the joblib launcher (`cpu_parallel`):
  two trials launched together, the next two once the slower has ended, as Hydra's sweepers do;
- workers: two sweeper processes with `n_jobs=1`, one PostgreSQL study (a throwaway server
  started here, tests/helpers/postgres.py);
- slots: one sweeper, `n_jobs=2` without batches (cpu_parallel).

Makespan: from the first process's start to the last one's end. Start-up: until the first job
starts. Idle: the share of the two slots' time, from the first job's start to the last one's
end, in which a slot ran no job (a job runs from Hydra's record of it, .hydra/overrides.yaml, to
its final metrics.json; launching, telling the study and asking it count as idle). Each
training runs on one thread (two slots on 2 cores).

    python bench/search.py [--long 800] [--short 80]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.helpers import postgres  # noqa: E402
from tests.helpers.commands import SMALL_SYNTHETIC  # noqa: E402

ORDER = ["long", "short", "short", "short", "long", "short", "short", "short"]


def command(storage: str, max_iters: list[int]) -> list[str]:
    choices = ",".join(str(n) for n in sorted(set(max_iters)))
    return [
        sys.executable,
        "-m",
        "seglab",
        "-m",
        "experiment=demo",
        *SMALL_SYNTHETIC,
        "default_hooks.checkpoint.interval=100000",
        "default_hooks.logger.interval=50",
        "hydra/sweeper=seglab_optuna",
        "hydra/sweeper/pruner=none",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=seglab",
        f"hydra.sweeper.n_trials={len(max_iters)}",
        f"train_cfg.max_iters=choice({choices})",
        f"train_cfg.val_interval={min(max_iters)}",
        "hydra.sweeper.heartbeat_interval=5",
    ]


def queue_trials(storage: str, max_iters: list[int]) -> None:
    study = optuna.create_study(study_name="seglab", storage=storage, direction="maximize")
    for n in max_iters:  # a choice's values are override strings
        study.enqueue_trial({"train_cfg.max_iters": str(n)})


def run(processes: list[list[str]], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Start every command at once in `cwd`; when they started (the epoch) and the seconds
    until the last one ended."""
    start, epoch = time.perf_counter(), time.time()
    started = [
        subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for args in processes
    ]
    codes = [p.wait() for p in started]
    if any(codes):
        raise SystemExit(f"a search process failed (exit codes {codes}); rerun in {cwd}")
    return epoch, time.perf_counter() - start


def job_spans(storage: str) -> list[tuple[float, float]]:
    """(start, end) of each trial's job: Hydra's record of it written at its start, its final
    metrics.json at its end."""
    spans = []
    for trial in optuna.load_study(study_name="seglab", storage=storage).trials:
        run_dir = Path(trial.user_attrs["seglab_job"]["run_dir"])
        spans.append(
            (
                (run_dir / ".hydra" / "overrides.yaml").stat().st_mtime,
                (run_dir / "metrics.json").stat().st_mtime,
            )
        )
    return spans


def measure(storage: str, started: float, makespan: float, slots: int = 2) -> dict[str, float]:
    """The table's row: `idle %` is the share of the slots' time, from the first job's start to
    the last one's end, in which a slot ran no job (launching, telling and asking included);
    the time before the first job, process start-up, is its own column."""
    spans = job_spans(storage)
    first, last = min(s for s, _ in spans), max(e for _, e in spans)
    busy = sum(end - start for start, end in spans)
    trials = optuna.load_study(study_name="seglab", storage=storage).trials
    return {
        "makespan s": round(makespan, 1),
        "start-up s": round(first - started, 1),
        "idle %": round(100 * (1 - busy / (slots * (last - first))), 1),
        "done": sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in trials),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", type=int, default=800, help="iterations of a long trial")
    parser.add_argument("--short", type=int, default=80, help="iterations of a short trial")
    args = parser.parse_args()
    max_iters = [args.long if kind == "long" else args.short for kind in ORDER]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        "SEGLAB_CACHE": os.environ.get("SEGLAB_CACHE", str(Path(tempfile.gettempdir(), "sc"))),
    }
    rows = {}
    with tempfile.TemporaryDirectory(prefix="seglab-bench-search-") as tmp:
        for name, options, workers in (
            (
                "batched",
                [
                    "hydra/launcher=cpu_parallel",
                    "hydra.sweeper.n_jobs=2",
                    "hydra.sweeper.batched=true",
                ],
                1,
            ),
            ("slots", ["hydra/launcher=cpu_parallel", "hydra.sweeper.n_jobs=2"], 1),
        ):
            cwd = Path(tmp, name)
            cwd.mkdir()
            storage = f"sqlite:///{cwd / 'study.db'}"
            queue_trials(storage, max_iters)
            started, seconds = run([command(storage, max_iters) + options] * workers, cwd, env)
            rows[name] = measure(storage, started, seconds)
            print(f"{name}: {rows[name]}", flush=True)
        with postgres.server() as server:
            cwd = Path(tmp, "workers")
            cwd.mkdir()
            os.environ.update(server.env)
            queue_trials(server.url, max_iters)
            started, seconds = run([command(server.url, max_iters)] * 2, cwd, {**env, **server.env})
            rows["workers"] = measure(server.url, started, seconds)
            print(f"workers: {rows['workers']}", flush=True)
    header = ["arrangement", *rows["batched"]]
    print(
        f"\n{len(ORDER)} trials: {ORDER.count('long')} of {args.long} iterations, "
        f"{ORDER.count('short')} of {args.short}; 2 slots on {os.cpu_count()} cores"
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    described = {
        "batched": "one sweeper, n_jobs=2 batched=true",
        "slots": "one sweeper, n_jobs=2",
        "workers": "two workers, n_jobs=1, PostgreSQL",
    }
    for name in ("batched", "slots", "workers"):
        print("| " + " | ".join([described[name], *map(str, rows[name].values())]) + " |")
    ratio = rows["workers"]["makespan s"] / rows["batched"]["makespan s"]
    print(f"workers/batched makespan: {ratio:.2f}")


if __name__ == "__main__":
    main()
