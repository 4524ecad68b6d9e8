"""The run wing: training with mmengine's Runner, and what joins it while it runs.

The training task (train: `prepare_run` is the path from the composed config to the Runner),
what the Runner gets beyond the exported config.py (runner_config), seglab's classes in
mmengine's registries (registry), the hooks and the metric, preemption, the console, torchrun
and SLURM, loader workers fitted to the CPUs, the experiment trackers (wandb, MLflow,
TensorBoard: tracking and its *_logging modules), loading errors that name their file, and an
Optuna trial's side of a search (hparam_search, study_storage).

May import: the ground on top, the config and checks wings. Not `zoo/`.
"""
