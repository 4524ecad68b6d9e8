"""Inference speed of a deployed model: PyTorch (mmseg's inferencer, as `seglab infer
checkpoint=` runs it) against ONNX Runtime (`seglab infer model=model.onnx`), on the same images.

    python bench/deploy.py [--models demo,segformer] [--images 16] [--repeats 5] [--out DIR]

Each model is trained briefly on seglab's synthetic data (a fresh `python -m seglab` process;
the speed does not depend on how well it learnt), exported by `python -m seglab deploy`, then
both segment the run's validation images (repeated to --images) one at a time, after two
warm-up images. Two numbers per runtime:
- end to end: reading nothing (the photos are in memory), the test pipeline's resize, the
  network, the resize of the logits to the photo and the argmax: what `seglab infer` pays per
  image, without writing files;
- network: the network alone on the pipeline's input (torch: the exported module, eval, no
  grad; ONNX Runtime: the session).
The best of --repeats passes is kept (other work on the machine only slows a pass down).
torch and ONNX Runtime use their default thread counts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SMALL_DATA = [
    "dataset.synthetic.num_train=16",
    "dataset.synthetic.num_val=4",
    "train_dataloader.num_workers=0",
    "train_dataloader.persistent_workers=false",
    "val_dataloader.num_workers=0",
    "val_dataloader.persistent_workers=false",
]
# the demo as `make demo` has it (its test pipeline resizes to 96 px), trained 20 iterations;
# SegFormer-B0 from scratch, 2 iterations of 32 px crops, its test pipeline resizing the
# synthetic images to 512 px as ADE20K's does
MODELS = {
    "demo": ["experiment=demo", *SMALL_DATA, "train_cfg.max_iters=20", "train_cfg.val_interval=20"],
    "segformer": [
        "experiment=segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512",
        "dataset=synthetic",
        *SMALL_DATA,
        "dataset.synthetic.image_size=64",
        "train_dataloader.batch_size=2",
        "dataset.crop_size=[32,32]",
        "dataset.scale=[512,512]",
        "pretrained=false",
        "train_cfg.max_iters=2",
        "train_cfg.val_interval=2",
        "default_hooks.checkpoint.interval=2",
    ],
}


def seglab(args: Sequence[str], cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "seglab", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    if result.returncode:
        raise SystemExit(f"seglab {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def best_rate(step: Callable[[object], object], items: Sequence, repeats: int) -> float:
    """Images per second of `step` over `items`, the best of `repeats` passes."""
    for item in items[:2]:
        step(item)  # warm-up: first-call allocations, ONNX Runtime's kernel choices
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for item in items:
            step(item)
        best = min(best, time.perf_counter() - start)
    return len(items) / best


def measure(run: Path, deployed: Path, count: int, repeats: int) -> dict[str, float]:
    import mmcv
    import numpy as np
    import torch
    from mmengine.config import Config
    from mmseg.apis import MMSegInferencer

    from seglab.deploy.export import SegmentationNetwork
    from seglab.deploy.onnx_runtime import OnnxSegmenter
    from seglab.deploy.pipeline import network_input, padded
    from seglab.deploy.preprocess import load_preprocess
    from seglab.evaluate import last_checkpoint
    from seglab.run.registry import register_with_mmengine

    warnings.simplefilter("ignore")  # mmseg's deprecation notes, once per model built
    cfg = Config.fromfile(str(run / "config.py"))
    val = cfg.val_dataloader.dataset
    paths = sorted((Path(val.data_root) / val.data_prefix.img_path).glob("*.jpg"))
    photos = [mmcv.imread(str(p)) for p in (paths * count)[:count]]
    register_with_mmengine()
    inferencer = MMSegInferencer(cfg, str(last_checkpoint(run)), device="cpu")
    inferencer.show_progress = False
    pre = load_preprocess(deployed / "preprocess.json")
    onnx = OnnxSegmenter(deployed / "model.onnx", pre)
    network = SegmentationNetwork(inferencer.model).eval()
    inputs = [padded(network_input(p, pre), pre)[0][None] for p in photos]
    if pre.slide:  # the network alone: one window
        h, w = pre.slide["crop_size"]
        inputs = [x[:, :, :h, :w].copy() for x in inputs]

    def torch_network(x: np.ndarray) -> None:
        with torch.no_grad():
            network(torch.from_numpy(x))

    with torch.no_grad():
        return {
            "torch end to end": best_rate(inferencer, photos, repeats),
            "onnx end to end": best_rate(onnx.predict, photos, repeats),
            "torch network": best_rate(torch_network, inputs, repeats),
            "onnx network": best_rate(onnx.network, inputs, repeats),
            "size": "x".join(map(str, inputs[0].shape[2:])),
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="demo,segformer", help=f"of {', '.join(MODELS)}")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="where runs go (a temp dir)")
    args = parser.parse_args(argv)
    work = args.out or Path(tempfile.mkdtemp(prefix="seglab-bench-deploy-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.models.split(","):
        before = set((work / "outputs/runs").glob("*"))
        seglab(MODELS[name], work)
        (run,) = set((work / "outputs/runs").glob("*")) - before
        deployed = work / f"deployed-{name}"
        seglab(["deploy", str(run), f"out={deployed}"], work)
        rates = measure(run, deployed, args.images, args.repeats)
        rows.append((name, rates))
        print(f"{name}: {rates}", flush=True)
    print(
        "\n| model | network input | PyTorch images/s | ONNX Runtime images/s | speed-up "
        "| PyTorch network | ONNX Runtime network |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(
            f"| {name} | {r['size']} | {r['torch end to end']:.1f} | {r['onnx end to end']:.1f} "
            f"| {r['onnx end to end'] / r['torch end to end']:.2f}x | {r['torch network']:.1f} "
            f"| {r['onnx network']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
