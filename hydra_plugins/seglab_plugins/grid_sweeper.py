"""Hydra's grid sweeper, made to survive failed jobs and to say what happened.

`hydra/sweeper=seglab_grid` (seglab's default): the same grid and batches as Hydra's basic
sweeper, but a failed job (an exception in the task: a bad override, out of memory, a NaN loss)
does not end the sweep. At the end a summary lists every job with its overrides, its status and
its mIoU or the last line of its error; it is printed and written to SWEEP_DIR/summary.json, and
the command exits 1 if any job failed. `hydra.sweeper.fail_fast=true` stops at the first failure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from seglab.masking import mask_launcher_logs, mask_overrides

SUMMARY_FILE = "summary.json"


class SeglabGridSweeper(BasicSweeper):
    def __init__(
        self,
        max_batch_size: int | None = None,
        params: dict[str, str] | None = None,
        fail_fast: bool = False,
    ) -> None:
        # fail_fast launches one job at a time, so that nothing runs after the first failure
        super().__init__(max_batch_size=1 if fail_fast else max_batch_size, params=params)
        self.fail_fast = fail_fast

    def sweep(self, arguments: list[str]) -> list[list[JobReturn]]:
        assert self.config is not None and self.launcher is not None
        mask_launcher_logs()
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        self.overrides = self.split_arguments(overrides, self.max_batch_size)

        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        returns: list[list[JobReturn]] = []
        jobs: list[dict[str, Any]] = []
        while not self.is_done():
            batch = self.get_job_batch()
            self.validate_batch_is_legal(batch)
            results = list(self.launcher.launch(batch, initial_job_idx=len(jobs)))
            returns.append(results)
            jobs += [job_record(r) for r in results]
            if self.fail_fast and any(j["status"] == "failed" for j in jobs):
                break
        not_run = sum(len(batch) for batch in self.overrides[self.batch_index :])
        report(jobs, not_run, sweep_dir)
        if any(j["status"] == "failed" for j in jobs):
            raise SystemExit(1)
        return returns


def job_record(result: JobReturn) -> dict[str, Any]:
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


def report(jobs: list[dict[str, Any]], not_run: int, sweep_dir: Path) -> None:
    counts = {s: sum(j["status"] == s for j in jobs) for s in ("finished", "pruned", "failed")}
    summary = {"jobs": jobs, **counts, "not_run": not_run}
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
    print("\n".join(lines), flush=True)
