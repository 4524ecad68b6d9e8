"""Hydra's grid sweeper, made to survive failed jobs and to say what happened.

`hydra/sweeper=seglab_grid` (seglab's default; config.py holds its options): the same grid and
batches as Hydra's basic sweeper, but a failed job (an exception in the task: a bad override,
out of memory, a NaN loss) does not end the sweep. At the end a summary lists every job with
its overrides, its status and its mIoU or the last line of its error (the full traceback is in
the job's directory); it is printed and written to SWEEP_DIR/summary.json, with the jobs an
earlier launch of the sweep finished, and the command exits 1 if any job failed (_sweep.py).
`hydra.sweeper.fail_fast=true` stops at the first failure.

Hydra imports this module at every start-up (its plugin scan): what a sweep needs beyond Hydra
is imported when it sweeps.
"""

from __future__ import annotations

from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn


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
        from hydra_plugins.seglab_plugins._sweep import (
            failed,
            finish_sweep,
            job_record,
            start_sweep,
        )

        assert self.config is not None and self.launcher is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        self.overrides = self.split_arguments(overrides, self.max_batch_size)
        sweep_dir = start_sweep(self.config)

        returns: list[list[JobReturn]] = []
        jobs: list[dict[str, Any]] = []
        while not self.is_done():
            batch = self.get_job_batch()
            self.validate_batch_is_legal(batch)
            results = list(self.launcher.launch(batch, initial_job_idx=len(jobs)))
            returns.append(results)
            jobs += [job_record(r) for r in results]
            if self.fail_fast and failed(jobs):
                break
        not_run = [job for batch in self.overrides[self.batch_index :] for job in batch]
        finish_sweep(jobs, sweep_dir, not_run=not_run)
        return returns
