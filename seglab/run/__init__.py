"""The run wing: training with mmengine's Runner, and what joins it while it runs.

The training task (train: compose, convert, check, build the Runner, train), the hooks and the
metric seglab registers with mmengine, preemption, the console, torchrun and SLURM, checkpoints
loaded as data, wandb, the embedded synthetic data, loading errors that name their file, and an
Optuna trial's side of a search (hparam_search, study_storage).

May import: the ground on top, the config and checks wings. Not `zoo/`.
"""
