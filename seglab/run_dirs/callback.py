"""The Hydra callback that names and claims a run's or a sweep's directories before Hydra
creates them, masks Hydra's records, and keeps a failed job's traceback.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.types import Transformer
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import InterpolationResolutionError

from seglab.errors import ConfigError, exit_with_error, is_pruned
from seglab.masking import mask_hydra_files, mask_text, unset_variables
from seglab.run_dirs.files import HYDRA_RECORD, MULTIRUN_FILE, TRACEBACK_FILE
from seglab.run_dirs.names import fixed_keys


class RunDirCallback(Callback):
    """Names the directories of a run or a sweep before Hydra creates them.

    A single run: `hydra.run.dir` is a resolver that claims a directory; resolved here once,
    it becomes a plain value that Hydra then reads, and a refusal is one line. (Under torchrun,
    TorchrunCallback did this on rank 0.)

    A sweep (Hydra calls on_multirun_start before it builds the sweeper): `hydra.sweep.dir` is
    resolved from the sweep's task overrides and set as a plain value, which the sweepers and
    launchers read from this config; and since every job's config is composed again from the
    Hydra overrides held here plus the job's own, two are added there: the sweep directory,
    and the fixed keys as `hydra.job.config.override_dirname.exclude_keys`, so that a job's
    `override_dirname` (its `hydra.sweep.subdir`) names what varies. Both are plain values in
    the config, so a job in another process (joblib, submitit, gpu_pool) reads them too.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_variables(config)
        HydraConfig.instance().set_config(config)  # `${hydra:...}` reads it (and locks it)
        try:
            run_dir = OmegaConf.select(config, "hydra.run.dir")
        except InterpolationResolutionError as err:
            cause = _config_error(err)
            if cause is not None:
                exit_with_error(cause)
            raise
        with read_write(config.hydra), open_dict(config.hydra):
            config.hydra.run.dir = str(run_dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.launcher.get("_target_") in SAME_ENVIRONMENT:
            _check_variables(config)
        hydra_config, readonly = HydraConfig.instance().cfg, config.hydra._get_node_flag("readonly")
        HydraConfig.instance().set_config(config)  # `${sweep_name:}` reads it (and locks it)
        try:  # Hydra would turn an exception here into a warning, and sweep on
            sweep_dir = str(OmegaConf.select(config, "hydra.sweep.dir"))
            task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
            exclude = [
                *config.hydra.job.config.override_dirname.exclude_keys,
                *fixed_keys(task),
            ]
        except Exception as err:  # noqa: BLE001  (one line, as for any bad input)
            first_line = (str(err).strip().splitlines() or [""])[0]
            exit_with_error(_config_error(err) or f"hydra.sweep.dir: {first_line}")
        finally:  # as the sweeper expects them (each job sets its own)
            HydraConfig.instance().cfg = hydra_config
            OmegaConf.set_readonly(config.hydra, readonly)
        pinned = {
            "hydra.sweep.dir": sweep_dir,
            "hydra.job.config.override_dirname.exclude_keys": list(dict.fromkeys(exclude)),
        }
        with read_write(config.hydra), open_dict(config.hydra):
            config.hydra.sweep.dir = sweep_dir
            for key, value in pinned.items():
                # as Hydra writes a job's overrides: escaped where the grammar needs it
                config.hydra.overrides.hydra.append(f"{key}={Transformer.str(value)}")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Hydra has just written its record of the job (`.hydra/`) and, a sweep's sweeper, of
        the sweep (multirun.yaml), both as the command wrote them: every secret value in them
        is masked here, before the job runs (seglab/masking.py `mask_record`)."""
        task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
        record = []
        if config.hydra.output_subdir is not None:
            subdir = Path(config.hydra.runtime.output_dir) / config.hydra.output_subdir
            record += [subdir / name for name in HYDRA_RECORD]
        if config.hydra.mode == RunMode.MULTIRUN:
            record.append(Path(config.hydra.sweep.dir) / MULTIRUN_FILE)
        mask_hydra_files(record, task)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """A sweep whose jobs all finished in an earlier launch starts none: its multirun.yaml,
        written again, is masked here."""
        task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
        mask_hydra_files([Path(config.hydra.sweep.dir) / MULTIRUN_FILE], task)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """A failed job keeps its full traceback in its directory (the sweep's summary and
        `seglab report` point to it); one that finishes drops a stale one. Hydra calls this in
        the job's own process, whatever the launcher, where the traceback still exists."""
        if job_return.hydra_cfg is None:
            return
        path = Path(job_return.hydra_cfg.hydra.runtime.output_dir) / TRACEBACK_FILE
        error = job_return._return_value  # return_value would re-raise it
        # (a trial Optuna's pruner stopped did not fail: seglab's Optuna sweeper says so)
        if isinstance(error, BaseException) and not is_pruned(error):
            path.write_text(mask_text("".join(traceback.format_exception(error))))
        elif path.parent.is_dir():
            path.unlink(missing_ok=True)


# the launchers whose jobs run with the sweep's own environment; another one's jobs may get
# variables of their own (gpu_pool: CUDA_VISIBLE_DEVICES, submitit: SLURM_*), and a job that
# lacks one fails with its one line
SAME_ENVIRONMENT = {
    "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
    "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
}


def _check_variables(config: DictConfig) -> None:
    """One line, before anything reads them, for the environment variables the command's
    overrides or its config read (`${oc.env:VAR}`, no default) that are not set, in this
    process or by `hydra.job.env_set`: OmegaConf would stop the run with a traceback where the
    value is first read."""
    task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    values = OmegaConf.to_container(config, resolve=False)
    config_values = {k: v for k, v in values.items() if k != "hydra"}
    provided = [str(name) for name in (config.hydra.job.get("env_set") or {})]
    missing = unset_variables(task, config_values, provided)
    if not missing:
        return
    names = list(dict.fromkeys(var for _, var in missing))
    reads = "; ".join(f"{key} reads ${{oc.env:{var}}}" for key, var in missing)
    first = names[0]
    exit_with_error(
        f"{reads}: environment variable{'s' * (len(names) > 1)} {', '.join(names)} "
        f"{'are' if len(names) > 1 else 'is'} not set; export {'them' if len(names) > 1 else 'it'}"
        f" before seglab starts (export {first}=VALUE), or give a default "
        f"(${{oc.env:{first},VALUE}})"
    )


def _config_error(err: BaseException | None) -> ConfigError | None:
    """The ConfigError a resolver raised, from the chain OmegaConf wraps it in."""
    while err is not None and not isinstance(err, ConfigError):
        err = err.__cause__ or err.__context__
    return err
