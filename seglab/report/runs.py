"""Reading runs for `seglab report` and `seglab compare`: each run's own files, and the jobs of
its sweep that have no directory here.

Reads each run's `.hydra/overrides.yaml` (what it ran) and `.hydra/config.yaml` (the values it
did not override), `metrics.json` (its last validation), mmengine's `*/vis_data/scalars.json`
(loss and validation curves), the images mmseg's SegVisualizationHook saved
(`default_hooks.visualization.draw=true`: `*/vis_data/vis_image/val_*.png`), the sweep's
`summary.json` (failed and pruned jobs) and a failed job's `traceback.txt`. An Optuna search is
read from its study: every trial of every worker as it stands, with its trial number and worker,
even where its directory is on another machine. Works on a sweep that is still running or
partly failed.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from omegaconf.errors import OmegaConfBaseException

from seglab.masking import mask_overrides, mask_text
from seglab.overrides import as_mapping
from seglab.run_dirs.files import (
    HYDRA_FILE,
    JOB_CONFIG_FILE,
    METRICS_FILE,
    MULTIRUN_FILE,
    OVERRIDES_FILE,
    SCALARS_GLOB,
    SUMMARY_FILE,
    TRACEBACK_FILE,
)
from seglab.run_dirs.resume import validated_at_length

if TYPE_CHECKING:
    import optuna

# an Optuna search's columns: the trial, and the worker that ran it (where several did)
SEARCH_COLUMNS = ["trial", "worker"]
SWEEP_FILES = (SUMMARY_FILE, MULTIRUN_FILE)
# mmengine's LocalVisBackend saves SegVisualizationHook's drawings as vis_image/NAME_STEP.png
PREDICTIONS_GLOB = "*/vis_data/vis_image/val_*.png"
_STEP = re.compile(r"^(?P<name>.+)_(?P<step>\d+)\.png$")
# the predictions a report shows per run: the last validation's first few images
PREDICTIONS_SHOWN = 4


def find_runs(root: Path) -> list[Path]:
    """Every Hydra job directory at or below `root` (each has .hydra/overrides.yaml)."""
    return sorted({p.parent.parent for p in root.glob(f"**/{OVERRIDES_FILE}")})


def read_run(run_dir: Path, summary_jobs: dict[str, dict]) -> dict[str, Any]:
    overrides = yaml.safe_load((run_dir / OVERRIDES_FILE).read_text()) or []
    config = yaml.safe_load((run_dir / JOB_CONFIG_FILE).read_text()) or {}
    hydra_file = run_dir / HYDRA_FILE
    hydra = yaml.safe_load(hydra_file.read_text()) if hydra_file.is_file() else None
    choices = ((hydra or {}).get("hydra") or {}).get("runtime", {}).get("choices") or {}
    train_cfg = config.get("train_cfg") or {}
    metrics_file = run_dir / METRICS_FILE
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    loss, miou, wall = [], [], 0.0
    for scalars in sorted(run_dir.glob(SCALARS_GLOB)):
        records = [
            _unprefixed(json.loads(line))
            for line in scalars.read_text().splitlines()
            if line.strip()
        ]
        loss += [(r["step"], r["loss"]) for r in records if "loss" in r]
        miou += [(r["step"], r["mIoU"]) for r in records if "mIoU" in r]
        started = datetime.strptime(scalars.parent.parent.name, "%Y%m%d_%H%M%S").timestamp()
        wall += max(0.0, scalars.stat().st_mtime - started)
    job = summary_jobs.get(str(run_dir.resolve()), {})
    error, trace = _error(run_dir, job)
    if error is not None:  # a message names values as they resolved: secrets masked
        error = mask_text(error, map(str, overrides))
    status = job.get("status") or ("failed" if error else None)
    if status is None:
        status = "finished" if validated_at_length(metrics, train_cfg) else "incomplete"
    return {
        "run_dir": run_dir,
        # as printed: secrets masked, `+`/`~` left out (`+x=1` and a default x=1 are alike)
        "overrides": as_mapping(mask_overrides(overrides)),
        "config": config,
        "choices": {k: v for k, v in choices.items() if "/" not in k},  # not hydra/launcher ...
        "status": status,
        "error": error if status == "failed" else None,
        "traceback": trace if status == "failed" else None,
        "mIoU": metrics.get("mIoU") if status == "finished" else None,
        "best mIoU": round(max(v for _, v in miou), 2) if miou else None,
        "mAcc": metrics.get("mAcc"),
        "aAcc": metrics.get("aAcc"),
        "iter": metrics.get("iter"),
        "wall s": round(wall) if wall else None,
        "loss_curve": loss,
        "miou_curve": miou,
        "per_class": {k[4:]: v for k, v in metrics.items() if k.startswith("IoU.")},
        "predictions": predictions(run_dir),
        **{key: job[key] for key in SEARCH_COLUMNS if key in job},
    }


def job_row(job: dict) -> dict[str, Any]:
    """A row for a job whose directory is not here: an Optuna trial another worker ran on
    another machine, or one that has not started. What the study knows of it."""
    overrides = mask_overrides(job.get("overrides") or [])
    return {
        "run_dir": Path(job.get("run_dir") or f"trial-{job.get('trial')}"),
        "overrides": as_mapping(overrides),
        "config": {},
        "choices": {},
        "status": job.get("status"),
        "error": job.get("error") if job.get("status") == "failed" else None,
        "traceback": None,
        "mIoU": job.get("mIoU"),
        **dict.fromkeys(["best mIoU", "mAcc", "aAcc", "iter", "wall s"]),
        "loss_curve": [],
        "miou_curve": [],
        "per_class": {},
        "predictions": [],
        **{key: job[key] for key in SEARCH_COLUMNS if key in job},
    }


def _unprefixed(record: dict) -> dict:
    """mmengine's `log_with_hierarchy` names (train/loss, val/mIoU) as plain ones."""
    return {k.split("/", 1)[-1]: v for k, v in record.items()}


def _error(run_dir: Path, job: dict) -> tuple[str | None, str | None]:
    """(the last line of a run's error, the file with its full traceback): from its sweep's
    summary, else from the traceback a failed job left in its directory."""
    trace = run_dir / TRACEBACK_FILE
    path = job.get("traceback") or (str(trace) if trace.is_file() else None)
    if job.get("error"):
        return job["error"], path
    if path is None:
        return None, None
    lines = [line for line in trace.read_text().splitlines() if line.strip()]
    return (lines[-1].strip() if lines else "failed"), path


def summary_jobs(root: Path) -> dict[str, dict]:
    """run directory -> its job in the sweep's summary, from every sweep at or below `root`."""
    return {
        str(Path(job["run_dir"]).resolve()): job for job in sweep_jobs(root) if job.get("run_dir")
    }


def sweep_jobs(root: Path) -> list[dict]:
    """The jobs of every sweep at or below `root`: an Optuna search's from its study (every
    worker's trials as they stand now), another sweep's from its summary.json."""
    found = []
    for folder in sweep_dirs(root):
        jobs = study_of_sweep(folder)
        if jobs is None and (folder / SUMMARY_FILE).is_file():
            jobs = json.loads((folder / SUMMARY_FILE).read_text()).get("jobs", [])
        found += jobs or []
    return found


def search_study(sweep_dir: Path) -> optuna.Study | None:
    """The Optuna study a sweep directory's search used, or None (not an Optuna search, or its
    study cannot be read from here: then its summary.json tells)."""
    import sqlalchemy
    from omegaconf import OmegaConf

    multirun = sweep_dir / MULTIRUN_FILE
    if not multirun.is_file():
        return None
    sweeper = ((yaml.safe_load(multirun.read_text()) or {}).get("hydra") or {}).get("sweeper")
    if not str((sweeper or {}).get("_target_", "")).endswith("SeglabOptunaSweeper"):
        return None
    from optuna import load_study

    from seglab.run.hparam_search import quiet_optuna
    from seglab.run.study_storage import storage_url, study_name

    storage = sweeper.get("storage")
    try:
        if storage:  # as written: `${oc.env:VAR}` is read here
            storage = OmegaConf.create({"url": storage}).url
        with quiet_optuna():
            return load_study(
                study_name=study_name({**sweeper, "storage": storage}, sweep_dir),
                storage=storage_url(storage, sweep_dir),
            )
    except (KeyError, sqlalchemy.exc.SQLAlchemyError, OmegaConfBaseException):
        return None


def study_of_sweep(sweep_dir: Path) -> list[dict] | None:
    """The jobs of the Optuna study a sweep directory's search used, or None."""
    from seglab.run.hparam_search import study_jobs

    study = search_study(sweep_dir)
    return None if study is None else study_jobs(study)


def sweep_dirs(root: Path) -> list[Path]:
    """Every sweep directory at or below `root` (it has a summary.json or multirun.yaml)."""
    return sorted({p.parent for pattern in SWEEP_FILES for p in root.glob(f"**/{pattern}")})


def predictions(run_dir: Path) -> list[Path]:
    """The validation drawings mmseg's SegVisualizationHook saved for the run's last
    validation that drew any, at most PREDICTIONS_SHOWN, by image name."""
    latest: dict[str, tuple[int, Path]] = {}
    for path in run_dir.glob(PREDICTIONS_GLOB):
        match = _STEP.match(path.name)
        if match:
            step, name = int(match["step"]), match["name"]
            if step >= latest.get(name, (-1, path))[0]:
                latest[name] = (step, path)
    if not latest:
        return []
    last = max(step for step, _ in latest.values())
    return sorted(p for step, p in latest.values() if step == last)[:PREDICTIONS_SHOWN]


def read_runs(root: Path) -> list[dict]:
    """Every run at or below `root`, as `read_run` reads it, and a row for each job of its
    sweeps whose directory is not here (an Optuna trial of a worker on another machine). Each
    run records the `root` it was found under (its `source` in a report of several)."""
    jobs = sweep_jobs(root)
    by_dir = {str(Path(j["run_dir"]).resolve()): j for j in jobs if j.get("run_dir")}
    runs = [read_run(d, by_dir) for d in find_runs(root)]
    here = {str(r["run_dir"].resolve()) for r in runs}
    elsewhere = [j for j in jobs if str(Path(j.get("run_dir") or "?").resolve()) not in here]
    return [{**r, "source": root} for r in runs + [job_row(j) for j in elsewhere]]
