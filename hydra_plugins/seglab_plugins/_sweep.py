"""The start and the end every seglab sweep shares, whatever sweeper picks its jobs.

At the start: the launchers' loggers mask secrets, the sweep directory is created and the
composed config saved in it as multirun.yaml (as Hydra's basic sweeper does). At the end: every
job is listed with its overrides, its status and its mIoU or the last line of its error and the
file holding its full traceback (written in its own directory by RunDirCallback); the list is
printed and written to SWEEP_DIR/summary.json, and the command exits 1 if a job failed.
A sweep launched again (perhaps with other `hydra.*` flags: another launcher, fail_fast, more
Optuna trials) goes to the same directory; the jobs that finished in an earlier launch and were
not run again stay in its summary.

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
from seglab.run_dirs import TRACEBACK_FILE

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
        # the full traceback, which RunDirCallback wrote in the job's own process
        written = Path(record["run_dir"]) / TRACEBACK_FILE if record["run_dir"] else None
        if written is not None and written.is_file():
            record["traceback"] = str(written)
    return record


def failed(jobs: Sequence[dict[str, Any]]) -> bool:
    return any(j["status"] == "failed" for j in jobs)


def finish_sweep(
    jobs: Sequence[dict[str, Any]],
    sweep_dir: Path,
    not_run: Sequence[Sequence[str]] = (),
    last_lines: Sequence[str] = (),
) -> None:
    """Write summary.json, print the summary (then `last_lines`), and exit 1 if a job failed.

    `jobs`: this launch's; `not_run`: the overrides of the jobs a fail-fast sweep left out.
    The jobs an earlier launch finished that this one did not run are kept, marked `earlier`.
    """
    ran = {_key(j) for j in jobs}
    earlier = [j for j in _earlier_results(sweep_dir) if _key(j) not in ran]
    jobs = [*({**j, "earlier": True} for j in earlier), *jobs]
    left_out = {tuple(mask_overrides(o)) for o in not_run} - {_key(j) for j in earlier}
    counts = {s: sum(j["status"] == s for j in jobs) for s in ("finished", "pruned", "failed")}
    summary = {"jobs": jobs, **counts, "not_run": len(left_out)}
    (sweep_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1) + "\n")
    tally = ", ".join(f"{n} {status}" for status, n in counts.items() if n or status != "pruned")
    lines = [
        f"seglab sweep: {tally}"
        + (f" ({len(earlier)} in an earlier launch)" if earlier else "")
        + (f", {len(left_out)} not run (fail_fast)" if left_out else "")
        + f"; summary in {sweep_dir / SUMMARY_FILE}"
    ]
    for job in jobs:
        outcome = f"mIoU={job['mIoU']}" if job["status"] == "finished" else job["error"]
        if job.get("traceback"):
            outcome += f" (traceback: {job['traceback']})"
        if job.get("earlier"):
            outcome += " (an earlier launch)"
        lines.append(
            f"  {job['status']:8} {' '.join(job['overrides']) or '(no overrides)'}: {outcome}"
        )
    print("\n".join([*lines, *last_lines]), flush=True)
    if failed(jobs):
        raise SystemExit(1)


def _key(job: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies a job across launches: its Optuna trial (two trials may sample the same
    values), else its overrides (masked, as the summary keeps them), which name its directory."""
    return ("trial", job["trial"]) if "trial" in job else tuple(job["overrides"])


def _earlier_results(sweep_dir: Path) -> list[dict[str, Any]]:
    """The finished and pruned jobs of the sweep's previous summary whose results are still in
    their directories (a failed one is not a result: it is run again or counted as not run)."""
    path = sweep_dir / SUMMARY_FILE
    try:
        jobs = json.loads(path.read_text()).get("jobs", []) if path.is_file() else []
    except (json.JSONDecodeError, AttributeError):
        return []  # a summary cut short by a crash: nothing to keep from it
    return [
        j
        for j in jobs
        if isinstance(j, dict)
        and j.get("status") in ("finished", "pruned")
        and j.get("run_dir")
        and (Path(j["run_dir"]) / "metrics.json").is_file()
    ]
