"""A Hydra sweeper on the current Optuna release: seglab's hyperparameter search.

`hydra/sweeper=seglab_optuna` (or an `hparams_search/` file that picks it; config.py holds its
options): the task's returned mIoU is the objective; the search space is
`hydra.sweeper.params` in Hydra's sweep syntax. Each process that runs the search is a worker of
its study: by default the study lives in SWEEP_DIR/optuna.db, for one worker (the same command
launched again continues it; trials that were running when it stopped are asked again with the
same parameters, and seglab resumes their runs from their checkpoints); with a database
(`hydra.sweeper.storage`) any number of workers share it, each trial under a lease
(seglab/run/study_storage.py). Each job renews its trial's lease and reports its validations to it
through an mmengine hook (seglab.run.hooks.OptunaTrialHook); a trial the pruner stops is recorded
as pruned.

Hydra imports this module at every start-up (its plugin scan): Optuna is imported by _optuna.py
when a search runs.
"""

from __future__ import annotations

from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class SeglabOptunaSweeper(Sweeper):
    def __init__(self, **sweeper_cfg: Any) -> None:
        # the options are read from the composed config (hydra.sweeper) when the search runs
        self.sweeper_cfg = sweeper_cfg
        self.config: DictConfig | None = None
        self.launcher = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        from hydra_plugins.seglab_plugins._optuna import search

        assert self.config is not None and self.launcher is not None
        search(self.config, self.launcher, arguments)
