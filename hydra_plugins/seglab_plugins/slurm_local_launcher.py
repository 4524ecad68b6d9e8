"""The SLURM preset's sweep jobs run by submitit on this machine, without a cluster.

`hydra/launcher=slurm_local` (conf/hydra/launcher/slurm_local.yaml: the `slurm` preset with this
launcher): the jobs go through submitit's local executor with the preset's resources (timeout,
CPUs, memory, GPUs and tasks per node) and submitit folder; the options only SLURM knows
(partition, signal delay, array parallelism, ...) are left out, as the local executor refuses
them. A quick check of a SLURM sweep before it is queued, and how the tests run the preset
where there is no cluster.

Hydra imports this module at every start-up (its plugin scan); submitit itself is imported by
Hydra's submitit launcher when jobs are launched.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from hydra_plugins.hydra_submitit_launcher import config as submitit_config
from hydra_plugins.hydra_submitit_launcher import submitit_launcher

# what reaches submitit's local executor: the options every executor takes, the number of
# requeues on timeout (an argument of the executor itself) and `setup` (commands before a job)
LOCAL_OPTIONS = {f.name for f in fields(submitit_config.LocalQueueConf)} | {
    "max_num_timeout",
    "setup",
}


class SlurmLocalLauncher(submitit_launcher.LocalLauncher):
    def __init__(self, **params: Any) -> None:
        super().__init__(**{k: v for k, v in params.items() if k in LOCAL_OPTIONS})
