"""The typed configs of seglab's Hydra plugins, registered in Hydra's ConfigStore.

As Hydra's own plugins do (hydra_joblib_launcher, hydra_submitit_launcher): each option of
`hydra/sweeper` and `hydra/launcher` is a dataclass, so a value of the wrong type
(`hydra.sweeper.n_trials=abc`) is refused when the config is composed, before any job starts.
Hydra imports this module when it scans the `hydra_plugins` namespace at every start-up: it
imports nothing beyond the standard library and Hydra.

    hydra/sweeper=seglab_grid     SeglabGridSweeperConf   (seglab's default: hparams_search=grid)
    hydra/sweeper=seglab_optuna   SeglabOptunaSweeperConf (e.g. hparams_search=demo_optuna)
    hydra/launcher=gpu_pool       GPUPoolLauncherConf
"""

# No `from __future__ import annotations`: Hydra's scan runs this module before it is in
# sys.modules, where dataclasses would look its string annotations up.
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class SeglabGridSweeperConf:
    """Hydra's grid sweeper that survives failed jobs (grid_sweeper.py): the same grid and
    batches as Hydra's basic sweeper, but a failed job does not end the sweep; every job is
    listed at the end, printed and in SWEEP_DIR/summary.json."""

    _target_: str = "hydra_plugins.seglab_plugins.grid_sweeper.SeglabGridSweeper"
    # jobs handed to the launcher at once (null: the whole grid)
    max_batch_size: int | None = None
    # swept parameters kept in a file, in Hydra's sweep syntax (conf/hparams_search/lr_grid.yaml:
    # `optim_wrapper.optimizer.lr: 0.004,0.002,0.001`)
    params: dict[str, str] | None = None
    # stop at the first failed job (the jobs are then launched one at a time)
    fail_fast: bool = False


class Direction(Enum):
    maximize = 1
    minimize = 2


@dataclass
class SeglabOptunaSweeperConf:
    """seglab's Optuna sweeper (optuna_sweeper.py): maximises the mIoU the task returns; the
    study is stored in SWEEP_DIR/optuna.db (one worker) or a shared database (any number of
    workers running the same command) and continues when the command is launched again."""

    _target_: str = "hydra_plugins.seglab_plugins.optuna_sweeper.SeglabOptunaSweeper"
    # null: `seglab` in the sweep directory's sqlite file; in a shared database, the sweep
    # directory's name (a function of the overrides: the same command, the same study)
    study_name: str | None = None
    # null: sqlite:///SWEEP_DIR/optuna.db, for one worker; many workers share a database:
    # postgresql://USER@HOST:PORT/DB (password in PGPASSWORD), or journal:PATH on a shared
    # file system (seglab/run/study_storage.py)
    storage: str | None = None
    direction: Direction = Direction.maximize
    # trials of the study, over all its workers, that run to an end (finished, pruned or
    # failed: a broken setup ends)
    n_trials: int = 20
    # trials this worker keeps in flight (with a launcher that runs jobs in processes of their
    # own: cpu_parallel, gpu_pool, slurm); a slot that frees up starts the next trial at once
    n_jobs: int = 1
    # launch n_jobs trials together and wait for the slowest before the next ones, as Hydra's
    # own sweepers do (one SLURM array per batch)
    batched: bool = False
    # a running trial's lease: renewed every heartbeat_interval seconds by its worker and its
    # job; once grace_period seconds pass without renewal (null: twice the interval) its worker
    # is taken for dead, and the next worker that looks queues the trial again
    heartbeat_interval: int = 60
    grace_period: int | None = None
    # the pruner: an option of `hydra/sweeper/pruner` (median, successive_halving,
    # hyperband, none), or any Optuna pruner as a `_target_` node, which replaces the option's
    # after a null (else its arguments join the option's):
    #   hydra.sweeper.pruner=null \
    #   'hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,lower:50}'
    defaults: list[Any] = field(default_factory=lambda: [{"pruner": "median"}])
    pruner: Any = MISSING  # (MISSING: the option above fills it)
    # Optuna's sampler as a `_target_` node (null: Optuna's default); seeded, one worker's
    # search is repeatable (workers sharing a database each draw their own numbers)
    sampler: Any = field(
        default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": 0}
    )
    # the search space in Hydra's sweep syntax (`optim_wrapper.optimizer.lr: tag(log,
    # interval(1e-4, 1e-2))`); the command line's sweeps join it
    params: dict[str, str] | None = field(default_factory=dict)


@dataclass
class GPUPoolLauncherConf:
    """One sweep job per GPU (gpu_pool_launcher.py), each in its own process with
    CUDA_VISIBLE_DEVICES set to its device; the next job starts when a GPU frees up:
    `python -m seglab -m hydra/launcher=gpu_pool model=upernet_r50,pspnet_r50-d8 ...`"""

    _target_: str = "hydra_plugins.seglab_plugins.gpu_pool_launcher.GPUPoolLauncher"
    # null: every GPU this process sees (CUDA_VISIBLE_DEVICES, else all); or their indices,
    # e.g. [0,1,2,3]
    devices: list[int] | None = None


_store = ConfigStore.instance()
_store.store(
    group="hydra/sweeper", name="seglab_grid", node=SeglabGridSweeperConf, provider="seglab"
)
_store.store(
    group="hydra/sweeper", name="seglab_optuna", node=SeglabOptunaSweeperConf, provider="seglab"
)
_store.store(group="hydra/launcher", name="gpu_pool", node=GPUPoolLauncherConf, provider="seglab")

# Pruners, each stopping a trial on the mIoU of its validations (`step`: the iteration).
# median: below the median of earlier trials at the same step (after 2 trials).
# successive_halving: asynchronous successive halving (ASHA): at each rung (min_resource
# iterations, then reduction_factor times more, ...) a trial goes on only if it is in the top
# 1/reduction_factor of the trials that reached that rung; no trial waits for another, so it
# fits many workers. min_resource should be the first validation's iteration.
# hyperband: several successive-halving brackets of different aggressiveness.
PRUNERS = {
    "median": {
        "_target_": "optuna.pruners.MedianPruner",
        "n_startup_trials": 2,
        "n_warmup_steps": 0,
    },
    "successive_halving": {
        "_target_": "optuna.pruners.SuccessiveHalvingPruner",
        "min_resource": 1,
        "reduction_factor": 2,
        "min_early_stopping_rate": 0,
    },
    "hyperband": {
        "_target_": "optuna.pruners.HyperbandPruner",
        "min_resource": 1,
        "max_resource": "auto",
        "reduction_factor": 3,
    },
    "none": {"_target_": "optuna.pruners.NopPruner"},
}
for _name, _pruner in PRUNERS.items():
    _store.store(
        group="hydra/sweeper/pruner",
        name=_name,
        node=_pruner,
        package="hydra.sweeper.pruner",
        provider="seglab",
    )
