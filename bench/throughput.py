"""Training throughput of one experiment in several speed modes: images/s, s/iter, the data
loading share of an iteration, peak memory, MFU and the speed-up over fp32.

    python bench/throughput.py [EXPERIMENT] [--iters 50] [--warmup 10] [--batch 4]
        [--modes fp32,bf16,bf16+cl,bf16+cl+compile] [--workers W] [--peak-flops F]
        [--out DIR] [--set KEY=VALUE ...]

EXPERIMENT defaults to upernet/upernet_r50_4xb4-80k_ade20k-512x512 where a GPU is visible and
to `demo` on a CPU. Each mode is a fresh `python -m seglab` process (seglab's own train path,
run directory and checks) training EXPERIMENT on seglab's synthetic data generated at the
experiment's crop size, without validation, checkpoints or pretrained weights (throughput does
not depend on them; the data set's 4 classes replace the experiment's, a change of the last 1x1
convolution only). A mode is `+`-joined switches: fp32, fp16 or bf16 (`precision=`), `cl`
(`channels_last=true`), `compile` (`compile=true`). A mode seglab refuses on this machine (bf16
AMP without a GPU) is a row `refused: REASON`.

Where the numbers come from:
- time and data_time: mmengine's own per-iteration log (`vis_data/scalars.json`, logged every
  iteration with no smoothing), the first --warmup iterations left out (compilation, cudnn's
  algorithm search, the loader's first batches). data time is data_time / time.
- peak memory: on a GPU the largest `memory` mmengine logs (torch.cuda.max_memory_allocated,
  MiB); on a CPU the training process's peak resident set size (its loader workers not counted).
- MFU: 3 x the forward FLOPs of one crop (mmengine.analysis.FlopAnalyzer over the backbone, the
  neck, the decode head and the auxiliary heads at the crop size; it counts a multiply-add as
  one, so x2 for FLOPs) x images/s, over the device's dense peak for the mode's precision
  (PEAK_FLOPS: datasheet values; fp32 on a GPU is counted at the TF32 peak where cuDNN may use
  TF32 for convolutions, torch's default). On a CPU "n/a" unless --peak-flops is given.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
GPU_EXPERIMENT = "upernet/upernet_r50_4xb4-80k_ade20k-512x512"
CPU_EXPERIMENT = "demo"
DEFAULT_MODES = "fp32,bf16,bf16+cl,bf16+cl+compile"

# What each switch of a mode adds to the command line (seglab's top-level keys).
PRECISIONS = {"fp32": [], "fp16": ["precision=fp16"], "bf16": ["precision=bf16"]}
SWITCHES = {"cl": ["channels_last=true"], "compile": ["compile=true"]}

# Dense peak FLOP/s by device name (the first key found in torch's device name) and precision,
# from NVIDIA's datasheets (no sparsity). fp16 and bf16 share a peak on these parts.
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "H200": {"bf16": 989e12, "fp16": 989e12, "tf32": 494e12, "fp32": 67e12},
    "H100 PCIe": {"bf16": 756e12, "fp16": 756e12, "tf32": 378e12, "fp32": 51e12},
    "H100 80GB HBM3": {"bf16": 989e12, "fp16": 989e12, "tf32": 494e12, "fp32": 67e12},  # SXM
    "H100 SXM": {"bf16": 989e12, "fp16": 989e12, "tf32": 494e12, "fp32": 67e12},
    "A100": {"bf16": 312e12, "fp16": 312e12, "tf32": 156e12, "fp32": 19.5e12},
}
MEMORY_KIND = {True: "torch.cuda.max_memory_allocated", False: "peak RSS of the training process"}
COLUMNS = ["mode", "images/s", "s/iter", "data time", "peak memory", "MFU", "vs fp32"]


@dataclass
class Result:
    """One mode's run: its measurements, or why it did not train."""

    mode: str
    images_per_s: float = math.nan
    s_per_iter: float = math.nan
    data_share: float = math.nan
    peak_mib: float = math.nan
    mfu: float | None = None
    refused: str | None = None
    failed: str | None = None
    log: Path | None = None


def parse_modes(text: str) -> list[str]:
    """`fp32,bf16+cl` -> ["fp32", "bf16+cl"]; an unknown switch or two precisions is an error."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    for mode in modes:
        parts = mode.split("+")
        unknown = [p for p in parts if p not in PRECISIONS and p not in SWITCHES]
        if unknown or sum(p in PRECISIONS for p in parts) > 1 or len(set(parts)) < len(parts):
            raise argparse.ArgumentTypeError(
                f"mode {mode!r}: `+`-joined switches, at most one of "
                f"{', '.join(PRECISIONS)}, and any of {', '.join(SWITCHES)}"
            )
    return modes


def mode_overrides(mode: str) -> list[str]:
    """The seglab overrides a mode adds (fp32 adds none: it is seglab's default)."""
    parts = mode.split("+")
    return [o for p in parts for o in {**PRECISIONS, **SWITCHES}[p]]


def mode_precision(mode: str, on_gpu: bool) -> str:
    """The precision whose peak a mode is measured against."""
    precision = next((p for p in mode.split("+") if p in PRECISIONS), "fp32")
    if precision == "fp32" and on_gpu:
        # cuDNN runs fp32 convolutions in TF32 unless told not to (torch's default: allowed)
        return "tf32" if torch.backends.cudnn.allow_tf32 else "fp32"
    return precision


def experiment_crop(experiment: str) -> tuple[int, int]:
    """The experiment's crop (height, width), as seglab composes it."""
    from omegaconf import OmegaConf

    from seglab.config.compose import compose

    cfg = compose([f"experiment={experiment}"])
    height, width = OmegaConf.to_container(cfg.dataset.crop_size, resolve=True)
    return int(height), int(width)


def bench_overrides(
    experiment: str,
    crop: tuple[int, int],
    *,
    batch: int,
    iters: int,
    workers: int,
    extra: Sequence[str] = (),
) -> list[str]:
    """The run every mode shares: EXPERIMENT on synthetic images of its crop size, logged every
    iteration without smoothing, no validation, checkpoint or pretrained weights."""
    height, width = crop
    return [
        f"experiment={experiment}",
        "dataset=synthetic",
        f"dataset.crop_size=[{height},{width}]",
        f"dataset.synthetic.image_shape=[{height},{width}]",
        # RandomResize keeps the images' size at ratio 1 (mmcv's scale is width, height)
        f"dataset.scale=[{width},{height}]",
        "dataset.synthetic.num_train=32",
        "dataset.synthetic.num_val=1",
        f"train_dataloader.batch_size={batch}",
        f"train_dataloader.num_workers={workers}",
        f"train_dataloader.persistent_workers={'true' if workers else 'false'}",
        f"train_cfg.max_iters={iters}",
        "val_cfg=null",
        "val_dataloader=null",
        "val_evaluator=null",
        "test_cfg=null",
        "++model.pretrained=null",
        "default_hooks.logger.interval=1",
        "++log_processor.window_size=1",
        f"default_hooks.checkpoint.interval={iters + 1}",
        "++default_hooks.checkpoint.save_last=false",
        *extra,
    ]


def forward_macs(overrides: Sequence[str], crop: tuple[int, int]) -> int:
    """Multiply-adds of one training forward pass of one crop: backbone, neck, decode head and
    auxiliary heads (the loss and the data preprocessor are left out: a rounding error)."""
    from mmengine.analysis import FlopAnalyzer
    from mmengine.model import revert_sync_batchnorm
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    from seglab.config.convert import export_config

    register_all_modules()
    with warnings.catch_warnings():  # mmseg's deprecation notes, printed by every run's log
        warnings.simplefilter("ignore")
        segmentor = MODELS.build(export_config(list(overrides)).model)
    # SyncBN needs a process group to run; the count is the same with BN
    segmentor = revert_sync_batchnorm(segmentor).eval()
    inputs = torch.zeros(1, 3, *crop)
    analyzer = FlopAnalyzer(TrainingForward(segmentor), (inputs,))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    with torch.no_grad():
        return int(analyzer.total())


class TrainingForward(torch.nn.Module):
    """What a training iteration runs forward, as one module FlopAnalyzer can trace: mmseg's
    `mode="tensor"` forward leaves the auxiliary heads out."""

    def __init__(self, segmentor: torch.nn.Module) -> None:
        super().__init__()
        self.segmentor = segmentor

    def forward(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        feats = self.segmentor.extract_feat(inputs)
        outputs = [self.segmentor.decode_head(feats)]
        aux = getattr(self.segmentor, "auxiliary_head", None)
        if aux is not None:
            heads = aux if isinstance(aux, torch.nn.ModuleList) else [aux]
            outputs += [head(feats) for head in heads]
        return outputs


def run_mode(mode: str, overrides: Sequence[str], out: Path) -> tuple[int, str, Path | None, float]:
    """`python -m seglab OVERRIDES` in out/MODE; its exit code, the last line of its output
    (a refusal's `seglab: error:` line), its run directory (None if it made none) and its peak
    RSS in MiB (that process alone: wait4)."""
    cwd = out / mode
    cwd.mkdir(parents=True, exist_ok=True)
    runs = cwd / "outputs" / "runs"
    before = set(runs.glob("*")) if runs.exists() else set()
    log = cwd / "seglab.log"
    # seglab from this checkout, whatever the environment has installed
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    with open(log, "w") as stream:
        process = subprocess.Popen(
            [sys.executable, "-m", "seglab", *overrides],
            cwd=cwd,
            stdout=stream,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"},
        )
        # wait4: this child's own rusage; RUSAGE_CHILDREN would keep the largest of all modes
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    new = sorted(set(runs.glob("*")) - before) if runs.exists() else []
    return (
        process.returncode,
        lines[-1] if lines else "",
        new[-1] if new else None,
        usage.ru_maxrss / 1024,
    )


def read_iterations(run_dir: Path) -> list[dict]:
    """The training iterations mmengine logged (time, data_time; memory on a GPU)."""
    found = sorted(run_dir.glob("*/vis_data/scalars.json"))
    if not found:
        return []
    entries = [json.loads(line) for line in found[-1].read_text().splitlines() if line.strip()]
    return [e for e in entries if "time" in e and "data_time" in e]


def measure(
    mode: str,
    overrides: Sequence[str],
    out: Path,
    *,
    batch: int,
    warmup: int,
    train_flops: float | None,
    peak: float | None,
    on_gpu: bool,
) -> Result:
    """Train one mode and read its numbers back."""
    code, last_line, run_dir, rss_mib = run_mode(mode, overrides, out)
    log = out / mode / "seglab.log"
    iterations = read_iterations(run_dir) if run_dir else []
    # refused: stopped with seglab's one line before training (an error later is a failure)
    if code == 2 and last_line.startswith("seglab: error: ") and not iterations:
        return Result(mode, refused=last_line.removeprefix("seglab: error: "), log=log)
    measured = [e for e in iterations if e["iter"] > warmup]
    if code != 0 or not measured:
        return Result(mode, failed=f"exit code {code}: {last_line}", log=log)
    s_per_iter = sum(e["time"] for e in measured) / len(measured)
    data_time = sum(e["data_time"] for e in measured) / len(measured)
    memory = [e["memory"] for e in measured if "memory" in e]
    images_per_s = batch / s_per_iter
    return Result(
        mode,
        images_per_s=images_per_s,
        s_per_iter=s_per_iter,
        data_share=data_time / s_per_iter,
        peak_mib=max(memory) if on_gpu and memory else rss_mib,
        mfu=train_flops * images_per_s / peak if train_flops and peak else None,
        log=log,
    )


def device_peak(mode: str, on_gpu: bool, device: str, given: float | None) -> float | None:
    """The peak FLOP/s MFU divides by: --peak-flops, else the table's for the GPU and the
    mode's precision; None (MFU "n/a") for a CPU or a GPU the table lacks."""
    if given:
        return given
    if not on_gpu:
        return None
    key = next((k for k in PEAK_FLOPS if k in device), None)
    return PEAK_FLOPS[key][mode_precision(mode, on_gpu)] if key else None


def format_table(results: Sequence[Result]) -> str:
    """A Markdown table, one row per mode; a mode that did not train says why in one cell."""
    base = next((r for r in results if r.mode == "fp32" and r.refused is r.failed is None), None)
    rows = [COLUMNS, ["---"] * len(COLUMNS)]
    for r in results:
        if r.refused or r.failed:
            why = f"refused: {r.refused}" if r.refused else f"failed: {r.failed} (log: {r.log})"
            rows.append([r.mode, why, *[""] * (len(COLUMNS) - 2)])
            continue
        rows.append(
            [
                r.mode,
                f"{r.images_per_s:.2f}",
                f"{r.s_per_iter:.4f}",
                f"{100 * r.data_share:.1f} %",
                f"{r.peak_mib:.0f} MiB",
                "n/a" if r.mfu is None else f"{100 * r.mfu:.3g} %",
                f"{r.images_per_s / base.images_per_s:.2f}x" if base else "n/a",
            ]
        )
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def device_name() -> tuple[bool, str]:
    if torch.cuda.is_available():
        return True, torch.cuda.get_device_name(0)
    return False, f"CPU ({os.cpu_count()} cores)"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", nargs="?", help="default: GPU " + GPU_EXPERIMENT)
    parser.add_argument("--iters", type=int, default=50, help="iterations per mode")
    parser.add_argument("--warmup", type=int, default=10, help="first iterations not measured")
    parser.add_argument("--batch", type=int, default=4, help="images per iteration")
    parser.add_argument("--modes", type=parse_modes, default=parse_modes(DEFAULT_MODES))
    parser.add_argument(
        "--workers", type=int, help="loader workers (default: 8 on a GPU, 0 on a CPU)"
    )
    parser.add_argument("--peak-flops", type=float, help="the device's peak FLOP/s, every mode")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/throughput"))
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a seglab override"
    )
    args = parser.parse_args(argv)
    if not 0 <= args.warmup < args.iters:
        parser.error(f"--warmup {args.warmup}: from 0 to --iters - 1 ({args.iters - 1})")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run every mode, print the table and write it to OUT/throughput.md; exit code 1 if a mode
    failed (a refusal is not a failure: it is what seglab answers on this machine)."""
    args = parse_args(argv)
    if str(REPO) not in sys.path:  # seglab from this checkout, as the modes' processes
        sys.path.insert(0, str(REPO))
    on_gpu, device = device_name()
    experiment = args.experiment or (GPU_EXPERIMENT if on_gpu else CPU_EXPERIMENT)
    if args.workers is None:  # a GPU outruns one process's data pipeline; 2 CPU cores do not
        args.workers = min(8, os.cpu_count() or 1) if on_gpu else 0
    crop = experiment_crop(experiment)
    shared = bench_overrides(
        experiment, crop, batch=args.batch, iters=args.iters, workers=args.workers, extra=args.set
    )
    macs = forward_macs(shared, crop)
    results = run_modes(args, shared, train_flops=3 * 2 * macs, on_gpu=on_gpu, device=device)
    report = "\n".join(
        [
            format_table(results),
            "",
            f"{experiment} on synthetic {crop[0]}x{crop[1]} crops, batch {args.batch}, "
            f"{args.workers} loader workers; {device}; mean of iterations "
            f"{args.warmup + 1}-{args.iters}. Forward {2 * macs / 1e9:.3g} GFLOP per image "
            f"(mmengine.analysis), training 3x. Peak memory: {MEMORY_KIND[on_gpu]}.",
            peak_note(args.modes, on_gpu, device, args.peak_flops),
        ]
    )
    print(report)
    (args.out / "throughput.md").write_text(report + "\n")
    return 1 if any(r.failed for r in results) else 0


def run_modes(
    args: argparse.Namespace,
    shared: Sequence[str],
    *,
    train_flops: float,
    on_gpu: bool,
    device: str,
) -> list[Result]:
    """Each mode in a process of its own, one after another (one device, one run at a time)."""
    results = []
    for mode in args.modes:
        start = time.perf_counter()
        result = measure(
            mode,
            [*shared, *mode_overrides(mode)],
            args.out.resolve(),
            batch=args.batch,
            warmup=args.warmup,
            train_flops=train_flops,
            peak=device_peak(mode, on_gpu, device, args.peak_flops),
            on_gpu=on_gpu,
        )
        took = time.perf_counter() - start
        print(f"bench: {mode}: {took:.0f} s, log {result.log}", file=sys.stderr)
        results.append(result)
    return results


def peak_note(modes: Sequence[str], on_gpu: bool, device: str, given: float | None) -> str:
    """Which peak each mode's MFU divides by."""
    if given:
        return f"MFU: over --peak-flops {given:.3g} FLOP/s."
    key = next((k for k in PEAK_FLOPS if k in device), None) if on_gpu else None
    if key is None:
        return "MFU: n/a, no peak FLOP/s known for this device (give one with --peak-flops)."
    peaks = {mode_precision(m, on_gpu): PEAK_FLOPS[key][mode_precision(m, on_gpu)] for m in modes}
    listed = ", ".join(f"{p} {v / 1e12:.0f} TFLOP/s" for p, v in peaks.items())
    return f"MFU: over the {key}'s dense datasheet peak: {listed}."


if __name__ == "__main__":
    sys.exit(main())
