"""How long `seglab data check` takes on a large folder: generated images and labels in the
layout `dataset=custom` reads, checked with 1 and with N worker processes.

    python bench/data_check.py [--images 20000] [--size 64] [--workers 1 2] [--keep DIR]

Each image is a JPEG of SIZE x SIZE pixels and its label a PNG of three classes; a tenth of the
images go to the validation split. Prints the generation time, then per worker count the wall
time of the whole command (composition, listing, reading every file, the report) and files/s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image


def write_pair(args: tuple[Path, str, int, int]) -> None:
    root, split, index, size = args
    rng = np.random.default_rng(index)
    label = np.zeros((size, size), np.uint8)
    label[: size // 2] = 1
    label[rng.integers(size // 2, size) :, : rng.integers(1, size)] = 2
    image = (label[..., None] * 80 + rng.integers(0, 40, (size, size, 3))).astype(np.uint8)
    Image.fromarray(image).save(root / "images" / split / f"{index:06d}.jpg", quality=90)
    Image.fromarray(label).save(root / "annotations" / split / f"{index:06d}.png")


def generate(root: Path, images: int, size: int) -> float:
    started = time.perf_counter()
    val = max(images // 10, 1)
    jobs = []
    for split, count, first in (("training", images - val, 0), ("validation", val, images)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
        jobs += [(root, split, first + i, size) for i in range(count)]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(write_pair, jobs, chunksize=256))
    return time.perf_counter() - started


def check(root: Path, workers: int) -> tuple[float, str]:
    command = [
        sys.executable,
        "-m",
        "seglab",
        "data",
        "check",
        "dataset=custom",
        f"dataset.data_root={root}",
        "dataset.classes=[a,b,c]",
        f"workers={workers}",
    ]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"seglab data check failed:\n{result.stderr[-2000:]}")
    return seconds, result.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--keep", type=Path, help="generate here (or reuse) and keep the files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch) / "data"
        if (root / "images").is_dir():
            print(f"reusing {root}")
        else:
            seconds = generate(root, args.images, args.size)
            print(f"generated {args.images} images and labels of {args.size} px in {seconds:.1f} s")
        print(f"{'workers':>8} {'seconds':>8} {'files/s':>8}  seglab's own line")
        for workers in args.workers:
            seconds, line = check(root, workers)
            print(f"{workers:>8} {seconds:>8.1f} {args.images / seconds:>8.0f}  {line}")


if __name__ == "__main__":
    main()
