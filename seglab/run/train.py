"""The training task: a Hydra app that converts its config and trains with mmengine's Runner."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shlex
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from mmengine.config import Config
from mmengine.dist import barrier
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from omegaconf import DictConfig, OmegaConf
from torch.utils.data.dataloader import DataLoader, _MultiProcessingDataLoaderIter

from seglab.checks.before_training import check_before_training
from seglab.config import speed
from seglab.config.compose import CONF_DIR, CONFIG_NAME, compose_reference, only_group_choices
from seglab.config.convert import run_config, to_container, write_config
from seglab.config.resolvers import register_resolvers
from seglab.config.schedule_fit import fit_milestones
from seglab.config.synthetic_data import ensure_synthetic_dataset
from seglab.errors import ConfigError, exit_with_error, os_reason
from seglab.masking import mask_env_values, mask_overrides, task_overrides
from seglab.overrides import override_keys
from seglab.run import preemption
from seglab.run.console import SeglabRunner, warnings_to_run_log
from seglab.run.distributed import launch_rank
from seglab.run.hparam_search import TRIAL_ENV
from seglab.run.loader_workers import fit_loader_workers
from seglab.run.mlflow_logging import check_tracking_server
from seglab.run.registry import register_with_mmengine
from seglab.run.runner_config import TRACKER_ADDITIONS, add_runner_only
from seglab.run.tracking import TrackedRun
from seglab.run_dirs.files import CONFIG_FILE, METRICS_FILE
from seglab.run_dirs.lock import drop_if_not_a_run, hold, release
from seglab.run_dirs.names import job_sweep_name
from seglab.run_dirs.resume import (
    at_length,
    no_checkpoint_error,
    resume_checkpoint,
    run_length,
    validated_at_length,
)

LOG_TIMES = 5  # a run prints its loss at least this often, however short
TRACKERS = tuple(TRACKER_ADDITIONS)  # their config nodes: `wandb`, `mlflow`, `tensorboard`
LOGGER_KEYS = {"default_hooks", "default_hooks.logger", "default_hooks.logger.interval"}
# how often an Optuna trial's job looks whether its earlier job has let its directory go
TRIAL_WAIT_S = 2

# Hydra composes the job's config before main's body runs, in this process or in a launcher's
# (which imports this module to unpickle main): the YAML's resolvers must be there first
register_resolvers()


def prepare_run(
    cfg: DictConfig,
    run_dir: Path,
    choices: Mapping[str, str | None],
    checkpoint: Path | None = None,
) -> Config:
    """From the config Hydra composed to the Runner's, top to bottom; nothing trains yet.

    `choices`: the group options Hydra picked; `checkpoint`: the run's own, to resume from.
    """
    register_with_mmengine()  # seglab's hooks, metric, transform and checkpoint loaders
    job = JobOverrides.current()
    # the same group options without the command line's values: composed once, used twice
    reference = compose_reference(choices) if job.sets_values else None
    mm_cfg = run_config(cfg, reference)
    synthetic = cfg.get("dataset", {}).get("synthetic")
    if synthetic is not None:
        ensure_synthetic_dataset(cfg.dataset.data_root, **synthetic)
    # the switch that made the optim_wrapper an AmpOptimWrapper names its need of a GPU
    check_before_training(
        mm_cfg, precision_switch=speed.precision_switch(cfg), compile=bool(cfg.get("compile"))
    )
    mm_cfg.work_dir = str(run_dir)
    tracking = tracked_run(cfg, run_dir, choices, job)  # an unreachable server: refused here
    # fitted to this run before the export, so that plain mmseg trains it alike
    logging = fit_log_interval(mm_cfg, job.keys)
    schedule = fit_schedule(mm_cfg, job.keys, reference)
    workers = fit_loader_workers(mm_cfg, job.keys)
    if launch_rank() == 0:  # in a multi-process run, one process prints and writes
        if schedule:
            print(
                f"seglab: a run shorter than its schedule's milestones: set {schedule}", flush=True
            )
        if workers:
            print(f"seglab: more loader workers than CPUs: set {workers}", flush=True)
        changes = (logging, schedule, workers)
        write_config(mm_cfg, run_dir / CONFIG_FILE, header=export_header(run_dir, job, changes))
    launcher_changes = add_runner_only(
        mm_cfg,
        switches=cfg,
        run_dir=run_dir,
        checkpoint=checkpoint,
        tracking=tracking,
    )
    if launcher_changes and launch_rank() == 0:
        print(f"seglab: distributed on CPU processes: {', '.join(launcher_changes)}", flush=True)
    return mm_cfg


@dataclasses.dataclass(frozen=True)
class JobOverrides:
    """The current Hydra job's task overrides, read once: as written, their keys, and masked
    for what is printed and logged."""

    written: tuple[str, ...] = ()
    masked: tuple[str, ...] = ()

    @classmethod
    def current(cls) -> JobOverrides:
        if not HydraConfig.initialized():
            return cls()
        return cls(tuple(HydraConfig.get().overrides.task), tuple(task_overrides()))

    @functools.cached_property
    def keys(self) -> set[str]:
        return override_keys(self.written)

    @property
    def sets_values(self) -> bool:
        """Whether the command line changes a value, not only group options (without Hydra:
        unknown, so yes)."""
        return not HydraConfig.initialized() or not only_group_choices(self.written)


def export_header(run_dir: Path, job: JobOverrides, changes: Sequence[str | None]) -> str:
    """The first lines of the exported config.py: how plain mmseg runs it, what made it."""
    return (
        "Written by seglab; plain mmseg runs it as it is:\n"
        f"  python tools/train.py {run_dir / CONFIG_FILE}\n"
        f"seglab overrides: {' '.join(job.masked) or '(none)'}"
        + "".join(f"\nseglab set {change}" for change in changes if change)
    )


def tracked_run(
    cfg: DictConfig, run_dir: Path, choices: Mapping[str, str | None], job: JobOverrides
) -> TrackedRun | None:
    """What the experiment trackers the config turns on (`logger=wandb`, `mlflow`,
    `tensorboard`, or a list of them) need beyond it (seglab/run/tracking.py); None for none.
    An MLflow server that does not answer is a ConfigError, before anything is written."""
    settings = {
        name: OmegaConf.to_container(cfg[name], resolve=True) for name in TRACKERS if cfg.get(name)
    }
    if not settings:
        return None
    if "mlflow" in settings:
        check_tracking_server(settings["mlflow"])
    sweeping = HydraConfig.get().mode == RunMode.MULTIRUN
    return TrackedRun(
        settings=settings,
        hydra_config=mask_env_values(to_container(cfg), OmegaConf.to_container(cfg)),
        overrides=list(job.masked),
        run_dir=run_dir,
        choices=dict(choices),
        sweep=job_sweep_name() if sweeping else None,
    )


def fit_log_interval(mm_cfg: Config, keys: Collection[str]) -> str | None:
    """Log the loss at least LOG_TIMES times per run: a schedule's interval (100 for `short`)
    is longer than a short try, which would print no loss at all. An interval the command line
    sets (`keys`: the keys it sets) is kept. Returns the change as `KEY=VALUE (why)`, or None."""
    logger = (mm_cfg.get("default_hooks") or {}).get("logger")
    max_iters = (mm_cfg.get("train_cfg") or {}).get("max_iters")
    if not logger or not isinstance(max_iters, int) or set(keys) & LOGGER_KEYS:
        return None
    interval, fitted = logger.get("interval", 10), max(1, max_iters // LOG_TIMES)
    if interval <= fitted:
        return None
    logger.interval = fitted
    return f"default_hooks.logger.interval={fitted} (was {interval}; max_iters={max_iters})"


def fit_schedule(mm_cfg: Config, keys: Collection[str], reference: DictConfig | None) -> str | None:
    """Milestones fitted into a run whose `max_iters` the command line shortened
    (seglab/config/schedule_fit.py), against `reference`: the same group options without
    value overrides."""
    if reference is None or not any("max_iters" in key for key in keys):
        return None
    return fit_milestones(mm_cfg, to_container(reference))


def build_runner(mm_cfg: Config) -> Runner:
    """As mmseg's tools/train.py does it, with seglab's Runner (a quieter console) unless the
    config names a Runner of its own."""
    if "runner_type" in mm_cfg:
        return RUNNERS.build(mm_cfg)
    return SeglabRunner.from_cfg(mm_cfg)


def train(
    cfg: DictConfig, run_dir: Path, choices: Mapping[str, str | None], sweeping: bool = False
) -> float | None:
    """Train one run; return its final validation mIoU (as mmseg reports it, in percent), or
    None for a run that does not validate.

    In a sweep the run directory is a function of the job's overrides, so a sweep launched
    again finds its earlier jobs: a finished one is skipped, an interrupted one resumes from
    its last checkpoint.
    """
    if launch_rank() == 0 and not hold(run_dir):  # under torchrun rank 0 holds it
        if not (sweeping and os.environ.get(TRIAL_ENV)):
            raise ConfigError(
                f"{run_dir} is being trained by another process right now; wait for it to end"
            )
        # an Optuna trial asked again while its first job still runs (its lease expired, the
        # database was away): that job's result is this one's, once it has ended
        print(f"seglab: {run_dir} is being trained by the trial's earlier job; waiting for it")
        while not hold(run_dir):
            time.sleep(TRIAL_WAIT_S)
    if sweeping:
        finished = finished_metrics(run_dir, cfg.train_cfg)
        if finished is not None:
            print(f"seglab: {run_dir} finished earlier, skipped (mIoU={finished.get('mIoU')})")
            return _miou(finished)
    checkpoint = None
    if sweeping or cfg.get("resume"):
        checkpoint, note = resume_checkpoint(run_dir)
        if checkpoint is None and not sweeping:
            raise no_checkpoint_error(run_dir, cfg.resume)
        if not sweeping and at_length(checkpoint, cfg.train_cfg):
            return already_finished(run_dir, checkpoint, cfg.train_cfg)
        if note and launch_rank() == 0:
            print(
                f"seglab: {note}; resuming from {checkpoint.name}, the newest intact checkpoint",
                flush=True,
            )
    mm_cfg = prepare_run(cfg, run_dir, choices, checkpoint)
    runner = None
    try:
        with warnings_to_run_log(mm_cfg.experiment_name):
            runner = build_runner(mm_cfg)
            runner.train()
        barrier()  # every rank reads the metrics rank 0 writes
    finally:
        if runner is not None:  # also after a failure: mmengine calls no after_run hook then
            stop_loader_workers(runner)
        release_singletons(mm_cfg)
        preemption.restore_stop_signals()
    metrics = json.loads((run_dir / METRICS_FILE).read_text())
    if launch_rank() == 0:
        print(
            (
                "final validation: " + ", ".join(f"{k}={v}" for k, v in metrics.items())
                if metrics.get("mIoU") is not None
                else f"trained {metrics['iter']} iterations without validation (no mIoU)"
            )
            + f"\nrun directory: {run_dir}",
            flush=True,
        )
    return _miou(metrics)


def already_finished(run_dir: Path, checkpoint: Path, train_cfg: Mapping) -> float | None:
    """`resume` on a run whose checkpoint is its last iteration (or epoch): one line, no
    training."""
    path = run_dir / METRICS_FILE
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    # else stopped during the final validation
    validated = validated_at_length(metrics, train_cfg)
    unit, length = run_length(train_cfg)
    units, key = ("epochs", "max_epochs") if unit == "epoch" else ("iterations", "max_iters")
    outcome = (
        f"mIoU={metrics.get('mIoU')}"
        if validated
        else f"its final validation did not end: seglab test run_dir='{run_dir}' runs it"
    )
    if launch_rank() == 0:
        print(
            f"seglab: {run_dir} finished all {length} {units} ({checkpoint.name}, "
            f"{outcome}); nothing to resume: to train longer, add "
            f"train_cfg.{key}=N \"resume='{run_dir}'\"",
            flush=True,
        )
    return _miou(metrics) if validated else None


def interrupted_line(run_dir: Path, sweeping: bool, argv: Sequence[str]) -> str:
    """What Ctrl-C prints: the command that continues the run (or the sweep)."""
    checkpoint, _ = resume_checkpoint(run_dir)
    if checkpoint is None and not sweeping:
        program, args = _command(argv)
        args = [a for a in args if not a.startswith("resume=")]
        return (
            f"seglab: interrupted before {run_dir} saved a checkpoint; "
            f"{program} {shlex.join(args)} starts it again"
        )
    return f"seglab: interrupted; {how_to_continue(run_dir, sweeping, argv)}"


def how_to_continue(run_dir: Path, sweeping: bool, argv: Sequence[str]) -> str:
    """The command that continues a stopped run from its newest checkpoint, or its sweep."""
    program, args = _command(argv)
    if sweeping:  # a sweep launched again skips finished jobs and resumes this one
        if Path(argv[0]).name not in ("__main__.py", "seglab"):  # a launcher's job process
            return "the sweep's command, run again, continues it"
        return f"the same command continues the sweep: {program} {shlex.join(args)}"
    checkpoint, _ = resume_checkpoint(run_dir)
    given = [a for a in args if a.startswith("resume=")]
    args = [a for a in args if not a.startswith("resume=")]
    path_given = given and given[-1].split("=", 1)[1].lower() not in ("true", "false")
    args.append(given[-1] if path_given else "resume=true")
    name = checkpoint.name if checkpoint is not None else "its last checkpoint"
    return f"{program} {shlex.join(args)} continues {run_dir} from {name}"


def _command(argv: Sequence[str]) -> tuple[str, list[str]]:
    program = "python -m seglab" if Path(argv[0]).name == "__main__.py" else Path(argv[0]).name
    return program, mask_overrides(argv[1:])  # a terminal's output ends up in job logs


def _miou(metrics: dict) -> float | None:
    return float(metrics["mIoU"]) if metrics.get("mIoU") is not None else None


def finished_metrics(run_dir: Path, train_cfg: Mapping) -> dict | None:
    """The metrics of a run that validated at its last iteration (or epoch), else None."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    return metrics if validated_at_length(metrics, train_cfg) else None


def stop_loader_workers(runner: Runner) -> None:
    """Stop the worker processes of the run's data loaders now that it has ended.

    The Runner, its loops and hooks refer to one another, so a finished run is freed only by
    the cyclic garbage collector, at some point in the next job of a sweep. The collector
    calls the finalizers of the loaders' queues (weak-reference callbacks) before the
    iterators' __del__: they stop the threads that would send each worker its exit message,
    so each join in __del__ waits out torch's 5 s timeout, then kills the worker. Stopped
    here, while all of it is reachable, the workers exit in milliseconds.
    """
    for loop in (runner._train_loop, runner._val_loop, runner._test_loop):  # dicts if unbuilt
        loader = getattr(loop, "dataloader", None)
        # a persistent loader keeps its iterator; an iteration-based train loop holds its own
        infinite = getattr(loop, "dataloader_iterator", None)
        for iterator in (getattr(loader, "_iterator", None), getattr(infinite, "_iterator", None)):
            if isinstance(iterator, _MultiProcessingDataLoaderIter):
                iterator._shutdown_workers()
        if isinstance(loader, DataLoader):
            loader._iterator = None  # a later iteration starts fresh workers


def release_singletons(mm_cfg: Config) -> None:
    """Drop this run's named mmengine instances (and close their files) once it has ended.

    The Runner names them after the experiment (adding its timestamp), the visualizer after
    its config; seglab starts both names with the run's unique experiment name.
    """
    from mmengine.logging import MessageHub, MMLogger
    from mmengine.registry import DefaultScope
    from mmengine.visualization import Visualizer

    for singleton in (Visualizer, MMLogger, MessageHub, DefaultScope):
        ours = [n for n in singleton._instance_dict if n.startswith(mm_cfg.experiment_name)]
        for name in ours:
            instance = singleton._instance_dict.pop(name)
            if isinstance(instance, Visualizer):
                instance.close()
            for handler in getattr(instance, "handlers", []):
                handler.close()


@hydra.main(config_path=str(CONF_DIR), config_name=CONFIG_NAME, version_base="1.3")
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        return train(cfg, run_dir, hydra_cfg.runtime.choices, sweeping)
    except ConfigError as err:
        if sweeping:
            raise  # a failed job: the sweeper lists it and goes on
        drop_if_not_a_run(run_dir)  # refused before training: no directory left
        exit_with_error(err)
    except OSError as err:  # a full or read-only disk: the file, and how the run goes on
        import errno
        import io
        import traceback

        if sweeping or err.errno not in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
            raise  # in a sweep: a failed job, which the sweeper lists
        # mmengine writes a checkpoint with open() and write(): the file object names the file
        files = [
            value.name
            for frame, _ in traceback.walk_tb(err.__traceback__)
            for value in frame.f_locals.values()
            if isinstance(value, io.IOBase)
            and isinstance(getattr(value, "name", None), str)
            and not value.name.startswith("<")  # <stdout>
        ]
        where = err.filename or (files[-1] if files else f"a file in {run_dir}")
        checkpoint, _ = resume_checkpoint(run_dir)
        once = "it can be written again" if err.errno == errno.EROFS else "there is space"
        exit_with_error(
            f"{where}: {os_reason(err)} while training {run_dir}; "
            + (
                f"{checkpoint.name}, the run's newest intact checkpoint, is kept: once {once}, "
                f"{how_to_continue(run_dir, sweeping, sys.argv)}"
                if checkpoint is not None
                else f"it has no intact checkpoint: once {once}, the same command starts it again"
            )
        )
    except preemption.Preempted as stop:  # SIGTERM, Ctrl-C: saved; how to go on
        if launch_rank() == 0:
            print(stop.line(how_to_continue(run_dir, sweeping, sys.argv)), file=sys.stderr)
        raise SystemExit(stop.code) from None
    except KeyboardInterrupt:  # Ctrl-C: how to go on, not a traceback
        if launch_rank() == 0:
            print(interrupted_line(run_dir, sweeping, sys.argv), file=sys.stderr, flush=True)
        raise SystemExit(preemption.INTERRUPTED) from None
    finally:
        release(run_dir)
