"""What seglab costs on top of a plain mmengine Runner: seconds per iteration and start-up time.

The same small config (the demo's) trains through `python -m seglab` and through a plain
`Runner.from_cfg(Config.fromfile(exported config.py))`, as mmseg's tools/train.py does, each at
two lengths. Per-iteration time is the slope between the two lengths; start-up (imports,
composition, checks, building the Runner, and the final validation) is what is left.

    python bench/overhead.py [--short 20] [--long 220] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLAIN_RUNNER = """
import sys
from mmengine.config import Config
from mmengine.runner import Runner
cfg = Config.fromfile(sys.argv[1])
cfg.work_dir = sys.argv[2]
Runner.from_cfg(cfg).train()
"""


def overrides(iters: int) -> list[str]:
    return [
        "experiment=demo",
        f"train_cfg.max_iters={iters}",
        f"train_cfg.val_interval={iters}",
        f"default_hooks.checkpoint.interval={iters}",
        "default_hooks.logger.interval=10",
    ]


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=20)
    parser.add_argument("--long", type=int, default=220)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="seglab-bench-"))
    times: dict[tuple[str, int], list[float]] = {}
    for repeat in range(args.repeats):
        for iters in (args.short, args.long):
            # seglab first: its run directory holds the exported config the plain run reads
            seglab_cmd = [sys.executable, "-m", "seglab", *overrides(iters)]
            times.setdefault(("seglab", iters), []).append(timed(seglab_cmd, work))
            run_dir = max((work / "outputs" / "runs").iterdir(), key=os.path.getmtime)
            plain_dir = work / f"plain-{iters}-{repeat}"
            plain_cmd = [
                sys.executable,
                "-c",
                PLAIN_RUNNER,
                str(run_dir / "config.py"),
                str(plain_dir),
            ]
            times.setdefault(("plain", iters), []).append(timed(plain_cmd, work))

    def cost(tool: str) -> tuple[float, float]:
        short = statistics.median(times[(tool, args.short)])
        long = statistics.median(times[(tool, args.long)])
        per_iter = (long - short) / (args.long - args.short)
        return per_iter, short - args.short * per_iter

    (seglab_iter, seglab_start), (plain_iter, plain_start) = cost("seglab"), cost("plain")
    print(f"{'':24}{'seglab':>10}{'plain':>10}{'ratio':>8}")
    print(
        f"{'seconds per iteration':24}{seglab_iter:10.4f}{plain_iter:10.4f}"
        f"{seglab_iter / plain_iter:8.3f}"
    )
    print(
        f"{'start-up seconds':24}{seglab_start:10.2f}{plain_start:10.2f}"
        f"{seglab_start / plain_start:8.3f}"
    )
    print(f"(medians of {args.repeats} runs of {args.short} and {args.long} iterations; {work})")


if __name__ == "__main__":
    main()
