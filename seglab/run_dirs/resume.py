"""Which checkpoint a run resumes from: the run's own (a copied run directory's
`last_checkpoint` still names the original's files), and an empty or truncated one gives way to
the newest intact `iter_*.pth` (`epoch_*.pth` in an epoch-based run); with none, one line naming
the nearest runs that have one.
"""

from __future__ import annotations

import difflib
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from seglab.errors import ConfigError
from seglab.run_dirs.files import CHECKPOINT_GLOB, LAST_CHECKPOINT


def checkpoint_iteration(path: Path) -> int:
    """The iteration an mmengine checkpoint's name says it holds (`iter_20.pth`), else -1."""
    match = re.search(r"(\d+)\.pth$", path.name)
    return int(match.group(1)) if match else -1


ITER, EPOCH = "iter", "epoch"


def run_length(train_cfg: Mapping | None) -> tuple[str, int | None]:
    """(unit, length) of a run's training loop: (EPOCH, max_epochs) for an epoch-based one
    (`schedule=epochs`), else (ITER, max_iters). The unit is the key of metrics.json that says
    when it was measured, and the prefix of the checkpoints CheckpointHook names
    (`epoch_2.pth`, `iter_20.pth`)."""
    train_cfg = train_cfg or {}
    if "max_epochs" in train_cfg and "max_iters" not in train_cfg:
        return EPOCH, train_cfg.get("max_epochs")
    return ITER, train_cfg.get("max_iters")


def at_length(checkpoint: Path, train_cfg: Mapping | None) -> bool:
    """Whether `checkpoint` is the one saved at the end of the run (`iter_{max_iters}.pth`,
    `epoch_{max_epochs}.pth`)."""
    unit, length = run_length(train_cfg)
    if unit == EPOCH:  # an iter_N.pth of an epoch-based run was saved by a stop within one
        return checkpoint.name == f"{EPOCH}_{length}.pth"
    return checkpoint_iteration(checkpoint) == length


def validated_at_length(metrics: Mapping, train_cfg: Mapping | None) -> bool:
    """Whether metrics.json was written at the end of the run."""
    unit, length = run_length(train_cfg)
    return metrics.get(unit) == length


def intact(path: Path) -> bool:
    """A checkpoint file torch can open: torch's zip format with its closing directory (a copy
    or a write stopped half way has none)."""
    return path.is_file() and path.stat().st_size > 0 and zipfile.is_zipfile(path)


def resume_checkpoint(run_dir: Path) -> tuple[Path | None, str | None]:
    """(the run's newest intact checkpoint, why it is not the one `last_checkpoint` names or
    None when it is); (None, None) when the run has none."""
    run_dir = Path(run_dir).resolve()
    pointer = run_dir / LAST_CHECKPOINT
    text = pointer.read_text().strip() if pointer.is_file() else ""
    named = own_file(run_dir, Path(text)) if text else None
    if named is not None and intact(named):
        return named, None
    saved = newest_first([p for p in run_dir.glob(CHECKPOINT_GLOB) if intact(p)])
    if not saved:
        return None, None
    if named is None and not pointer.is_file():
        why = "there is no last_checkpoint"
    elif named is None:
        why = "last_checkpoint is empty"
    elif not named.is_file():
        why = f"last_checkpoint names {named}, which does not exist"
    else:
        why = f"last_checkpoint names {named.name}, which is truncated"
    return saved[0], why


def newest_first(checkpoints: list[Path]) -> list[Path]:
    """By the count in their names where they all count one thing (`iter_N.pth`, or
    `epoch_N.pth`); an epoch-based run stopped by Ctrl-C or SIGTERM between two epochs holds
    `iter_N.pth` beside `epoch_N.pth`, whose counts do not compare: by the time they were
    written."""
    kinds = {m.group(1) for p in checkpoints if (m := re.match(r"(iter|epoch)_\d+\.pth$", p.name))}
    if kinds == {ITER, EPOCH}:
        return sorted(checkpoints, key=lambda p: p.stat().st_mtime_ns, reverse=True)
    return sorted(checkpoints, key=checkpoint_iteration, reverse=True)


def own_file(run_dir: Path, named: Path) -> Path:
    """`named` as a file of `run_dir`: a run directory copied or moved elsewhere still names its
    original's files in `last_checkpoint`; its own file of that name is the one meant, and
    where the copy lacks it, not the original's (mmengine writes only its own work_dir's
    checkpoints there): the newest of the copy's own is taken instead."""
    return run_dir / named.name if named.parent != run_dir else named


def nearest_runs(run_dir: Path, n: int = 3) -> list[str]:
    """The runs beside `run_dir` that have a checkpoint, the most similar names first."""
    root = Path(run_dir).parent
    runs = (
        [p.name for p in root.iterdir() if (p / LAST_CHECKPOINT).is_file()] if root.is_dir() else []
    )
    return [str(root / name) for name in difflib.get_close_matches(run_dir.name, runs, n, 0.0)]


def no_checkpoint_error(run_dir: Path, resume: Any) -> ConfigError:
    nearest = nearest_runs(run_dir)
    hint = (
        f"nearest runs with a checkpoint: {', '.join(nearest)}; continue one with resume=PATH"
        if nearest
        else f"no run under {Path(run_dir).parent} has one"
    )
    value = str(resume).lower() if isinstance(resume, bool) else resume
    return ConfigError(
        f"resume={value}: {run_dir} has no checkpoint (no earlier run of these overrides saved "
        f"one); {hint}, or drop resume to start a new run"
    )
