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
    study is stored in SWEEP_DIR/optuna.db and continues when the command is launched again."""

    _target_: str = "hydra_plugins.seglab_plugins.optuna_sweeper.SeglabOptunaSweeper"
    study_name: str = "seglab"
    # null: sqlite:///SWEEP_DIR/optuna.db
    storage: str | None = None
    direction: Direction = Direction.maximize
    # trials that run to an end (finished, pruned or failed: a broken setup ends) in the study
    n_trials: int = 20
    # trials launched at once (with a parallel launcher)
    n_jobs: int = 1
    # Optuna's sampler and pruner as `_target_` nodes (null: Optuna's default sampler, no
    # pruning). Another class replaces one after a null, else its arguments join the default's:
    #   hydra.sweeper.pruner=null \
    #   'hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,lower:50}'
    sampler: Any = field(
        default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": 0}
    )
    pruner: Any = field(
        default_factory=lambda: {
            "_target_": "optuna.pruners.MedianPruner",
            "n_startup_trials": 2,
            "n_warmup_steps": 0,
        }
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
