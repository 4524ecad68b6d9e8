"""The start and the end every seglab sweep shares, whatever sweeper picks its jobs.

At the start: the launchers' loggers mask secrets, the sweep directory is created and the
composed config saved in it as multirun.yaml (as Hydra's basic sweeper does). At the end: every
job is listed with its overrides, its status and its mIoU or the last line of its error; the
list is printed and written to SWEEP_DIR/summary.json, and the command exits 1 if a job failed.

Private (Hydra's plugin scan skips `_` modules): the sweepers import it when they sweep.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf

from seglab.masking import mask_launcher_logs, mask_overrides

SUMMARY_FILE = "summary.json"


def start_sweep(config: DictConfig) -> Path:
    """The sweep directory, created, with multirun.yaml in it."""
    mask_launcher_logs()
    sweep_dir = Path(config.hydra.sweep.dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, sweep_dir / "multirun.yaml")
    return sweep_dir


def job_record(result: JobReturn) -> dict[str, Any]:
    """A job's entry in the summary: its overrides (secrets masked), run directory, status and
    mIoU or error."""
    record: dict[str, Any] = {
        "overrides": mask_overrides(result.overrides),  # printed and kept: no secret values
        "run_dir": result.hydra_cfg.hydra.runtime.output_dir if result.hydra_cfg else None,
    }
    if result.status == JobStatus.COMPLETED:
        record.update(status="finished", mIoU=result.return_value)
    else:
        error = result._return_value  # return_value would re-raise it
        lines = str(error).strip().splitlines() or [""]
        record.update(status="failed", error=f"{type(error).__name__}: {lines[-1]}")
    return record


def failed(jobs: Sequence[dict[str, Any]]) -> bool:
    return any(j["status"] == "failed" for j in jobs)


def finish_sweep(
    jobs: Sequence[dict[str, Any]],
    sweep_dir: Path,
    not_run: int = 0,
    last_lines: Sequence[str] = (),
) -> None:
    """Write summary.json, print the summary (then `last_lines`), and exit 1 if a job failed.

    `not_run`: the jobs a fail-fast sweep left out.
    """
    counts = {s: sum(j["status"] == s for j in jobs) for s in ("finished", "pruned", "failed")}
    summary = {"jobs": list(jobs), **counts, "not_run": not_run}
    (sweep_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1) + "\n")
    tally = ", ".join(f"{n} {status}" for status, n in counts.items() if n or status != "pruned")
    lines = [
        f"seglab sweep: {tally}"
        + (f", {not_run} not run (fail_fast)" if not_run else "")
        + f"; summary in {sweep_dir / SUMMARY_FILE}"
    ]
    for job in jobs:
        outcome = f"mIoU={job['mIoU']}" if job["status"] == "finished" else job["error"]
        lines.append(
            f"  {job['status']:8} {' '.join(job['overrides']) or '(no overrides)'}: {outcome}"
        )
    print("\n".join([*lines, *last_lines]), flush=True)
    if failed(jobs):
        raise SystemExit(1)
