"""The start and the end every seglab sweep shares, whatever sweeper picks its jobs.

At the start: the launchers' loggers mask secrets, the sweep directory is created and the
composed config saved in it as multirun.yaml (as Hydra's basic sweeper does; one that cannot be
written, a read-only or full `outputs/`, ends the command in one line). At the end: every
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

from seglab.errors import exit_with_error, os_reason
from seglab.masking import (
    mask_hydra_files,
    mask_launcher_logs,
    mask_overrides,
    mask_text,
    remember_secrets,
)
from seglab.overrides import as_mapping, override_key
from seglab.run_dirs.files import METRICS_FILE, MULTIRUN_FILE, SUMMARY_FILE, TRACEBACK_FILE

# a job's status in the summary; `running` and `waiting`: an Optuna trial another worker holds,
# or one queued again after its worker stopped
STATUSES = ("finished", "pruned", "failed", "running", "waiting")


def start_sweep(config: DictConfig) -> Path:
    """The sweep directory, created, with multirun.yaml in it."""
    mask_launcher_logs()
    # the sweep's secrets (each value of a swept secret) are masked in every line it writes
    task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    remember_secrets(task)
    sweep_dir = Path(config.hydra.sweep.dir)
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(config, sweep_dir / MULTIRUN_FILE)
        mask_hydra_files([sweep_dir / MULTIRUN_FILE], task)  # masked before any job starts
    except OSError as err:  # a read-only or full `outputs/`: one line before any job starts
        # (Hydra reports an exception from a sweeper as a traceback: the line is printed here)
        where = f" at {err.filename}" if err.filename else ""
        exit_with_error(
            f"sweep directory {sweep_dir}: cannot be made or written ({os_reason(err)}{where}); "
            "make it writable (free space on a full disk), or start seglab in another "
            "directory (sweeps go to ./outputs/sweeps)"
        )
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
        # an error names values as they resolved: the job's secrets are masked
        line = mask_text(f"{type(error).__name__}: {lines[-1]}", result.overrides or ())
        record.update(status="failed", error=line)
        # the full traceback, which RunDirCallback wrote in the job's own process
        written = Path(record["run_dir"]) / TRACEBACK_FILE if record["run_dir"] else None
        if written is not None and written.is_file():
            _mask_file(written, result.overrides or ())
            record["traceback"] = str(written)
    return record


def _mask_file(path: Path, overrides: Sequence[str]) -> None:
    """`path` with the secrets of the job (and of the sweep's command line) masked, in case the
    job's process knew fewer of them than this one (RunDirCallback masks as it writes)."""
    text = path.read_text()
    masked = mask_text(text, overrides)
    if masked != text:
        path.write_text(masked)


def failed(jobs: Sequence[dict[str, Any]]) -> bool:
    return any(j["status"] == "failed" for j in jobs)


def finish_sweep(
    jobs: Sequence[dict[str, Any]],
    sweep_dir: Path,
    not_run: Sequence[Sequence[str]] = (),
    last_lines: Sequence[str] = (),
    earlier: bool = True,
) -> None:
    """Write summary.json, print the summary (then `last_lines`), and exit 1 if a job failed.

    `jobs`: this launch's; `not_run`: the overrides of the jobs a fail-fast sweep left out.
    With `earlier`, the jobs an earlier launch finished that this one did not run are kept,
    marked `earlier` (an Optuna search passes every trial of its study instead, each with the
    worker that ran it, and running ones as `running`).
    """
    ran = {_key(j) for j in jobs}
    before = [j for j in _earlier_results(sweep_dir) if _key(j) not in ran] if earlier else []
    jobs = [*({**j, "earlier": True} for j in before), *jobs]
    left_out = {tuple(mask_overrides(o)) for o in not_run} - {_key(j) for j in before}
    counts = {s: sum(j["status"] == s for j in jobs) for s in STATUSES}
    summary = {"jobs": jobs, **counts, "not_run": len(left_out)}
    (sweep_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1) + "\n")
    tally = ", ".join(
        f"{n} {status}" for status, n in counts.items() if n or status in ("finished", "failed")
    )
    lines = [
        f"seglab sweep: {tally}"
        + (f" ({len(before)} in an earlier launch)" if before else "")
        + (f", {len(left_out)} not run (fail_fast)" if left_out else "")
        + f"; summary in {sweep_dir / SUMMARY_FILE}"
    ]
    varying = varying_keys([j["overrides"] for j in jobs])
    workers = {j.get("worker") for j in jobs}
    for job in jobs:
        outcome = f"mIoU={job['mIoU']}" if job["status"] == "finished" else job.get("error", "")
        if "trial" in job:
            outcome = f"trial {job['trial']}: {outcome}".rstrip(": ")
        if len(workers) > 1:
            outcome += f" (worker {job.get('worker')})"
        if job.get("traceback"):
            outcome += f" (traceback: {job['traceback']})"
        if job.get("earlier"):
            outcome += " (an earlier launch)"
        shown = [o for o in job["overrides"] if override_key(o) in varying]
        lines.append(
            f"  {job['status']:8} {' '.join(shown or job['overrides']) or '(no overrides)'}: "
            + outcome
        )
    print("\n".join([*lines, *last_lines]), flush=True)
    if failed(jobs):
        raise SystemExit(1)


def varying_keys(override_lists: Sequence[Sequence[str]]) -> set[str]:
    """The keys whose values are not the same in every job: what a summary line shows of a
    job (the keys every job sets alike are in the sweep's command and its directory name)."""
    jobs = [as_mapping(overrides) for overrides in override_lists]
    keys = {key for pairs in jobs for key in pairs}
    return {key for key in keys if len({pairs.get(key, ()) for pairs in jobs}) > 1}


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
        and (Path(j["run_dir"]) / METRICS_FILE).is_file()
    ]
