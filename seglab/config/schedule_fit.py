"""Short runs of any zoo model: a schedule's fixed milestones fitted into `train_cfg.max_iters`.

Upstream schedules hold milestones in iterations: a warmup's end (1500 for SegFormer, 1000 for
BiSeNetV1), the begin of the scheduler after it, MultiStepLR's milestones. A first try with
`train_cfg.max_iters=40` put them beyond the run, and mmengine refused to build the schedule
(`end should be larger than begin, but got begin=1500, end=40`). When a milestone the config
fixes lies at or beyond `max_iters`, every fixed milestone is scaled by max_iters / upstream's
max_iters, the way a shorter run of the same schedule means it: a warmup over the first 1% of
160000 iterations becomes one over the first 1% of 40. A value the command line sets, and one
that follows `max_iters` by interpolation (PolyLR's end), differs from upstream's and is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmengine.config import Config

BOUNDS = ("begin", "end")
# a fitted warmup shorter than this leaves the rate more than 5% below its end (see below)
MIN_WARMUP = 20


def _schedulers(node: Any) -> list:
    if isinstance(node, Mapping):
        return [node]
    return list(node) if isinstance(node, (list, tuple)) else []


def _iteration_based(scheduler: Mapping) -> bool:
    # mmengine's schedulers count epochs unless told otherwise
    return isinstance(scheduler, Mapping) and scheduler.get("by_epoch", True) is False


def fit_milestones(mm_cfg: Config, upstream: Mapping[str, Any]) -> str | None:
    """Scale the fixed milestones of `mm_cfg.param_scheduler` in place when a run is shorter
    than them; `upstream` is the same composition without value overrides (a container).
    Returns the change as `KEY=VALUE, ... (why)` for the run's header and console, or None."""
    max_iters = (mm_cfg.get("train_cfg") or {}).get("max_iters")
    upstream_iters = (upstream.get("train_cfg") or {}).get("max_iters")
    if not isinstance(max_iters, int) or not isinstance(upstream_iters, int):
        return None
    if max_iters >= upstream_iters:
        return None
    ours, theirs = (
        _schedulers(mm_cfg.get("param_scheduler")),
        _schedulers(upstream.get("param_scheduler")),
    )
    if len(ours) != len(theirs):  # the command line changed the list itself: as it is
        return None
    fixed = []  # (scheduler index, key) of the milestones upstream fixes
    for i, (scheduler, original) in enumerate(zip(ours, theirs, strict=True)):
        if not _iteration_based(scheduler):
            continue
        for key in (*BOUNDS, "milestones"):
            value = scheduler.get(key)
            if value is not None and value == original.get(key) and _iterations(value):
                fixed.append((i, key))
    values = [ours[i][key] for i, key in fixed]
    flat = [v for value in values for v in (value if isinstance(value, list) else [value])]
    if not any(v >= max_iters for v in flat):
        return None
    ratio = max_iters / upstream_iters

    def scale(value: int) -> int:
        return 0 if value == 0 else min(max_iters, max(1, round(value * ratio)))

    changes, scaled = [], set()
    for i, key in fixed:
        old = ours[i][key]
        new = [scale(v) for v in old] if isinstance(old, list) else scale(old)
        if new != old:
            ours[i][key] = new
            changes.append(f"param_scheduler.{i}.{key}={_text(new)}")
            scaled.add(i)
    for i, scheduler in enumerate(ours):  # a span scaled to nothing keeps one iteration
        begin, end = scheduler.get("begin", 0), scheduler.get("end")
        if _iteration_based(scheduler) and isinstance(end, int) and end <= begin:
            scheduler["end"] = begin + 1
            changes.append(f"param_scheduler.{i}.end={begin + 1}")
    changes += _short_warmups_off(ours, scaled)
    if isinstance(mm_cfg.get("param_scheduler"), Mapping):
        mm_cfg.param_scheduler = ours[0]
    return (
        f"{', '.join(changes)} (milestones scaled by max_iters={max_iters}/{upstream_iters}, "
        f"upstream's; a warmup under {MIN_WARMUP} iterations is none)"
    )


def _short_warmups_off(schedulers: list, scaled: set[int]) -> list[str]:
    """mmengine's LinearLR over N iterations ends at start + (end - start) * (N-1)/N, and the
    scheduler after it goes on from there for the rest of the run: 99.9% of the rate after
    upstream's 1500, but 75% after 4, and SegFormer's 1e-6 (BiSeNetV1's 10%) after 1. A warmup
    scaled to fewer than MIN_WARMUP iterations is therefore none: its start_factor is its
    end_factor, and the run trains at the rate its schedule means."""
    changes = []
    for i in sorted(scaled):
        scheduler = schedulers[i]
        if scheduler.get("type") != "LinearLR" or not _iteration_based(scheduler):
            continue
        span = scheduler.get("end", 0) - scheduler.get("begin", 0)
        rate = scheduler.get("end_factor", 1.0)
        if span < MIN_WARMUP and scheduler.get("start_factor") != rate:
            scheduler["start_factor"] = rate
            changes.append(f"param_scheduler.{i}.start_factor={rate:g}")
    return changes


def _iterations(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: Any) -> str:
    return f"[{','.join(map(str, value))}]" if isinstance(value, list) else str(value)
