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

from seglab.masking import mask_overrides, mask_text
from seglab.overrides import as_mapping
from seglab.run_dirs.files import (
    HYDRA_FILE,
    JOB_CONFIG_FILE,
    METRICS_FILE,
    MULTIRUN_FILE,
    OPTUNA_DB,
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


# what a run directory's files may hold that the report cannot read: the run is a row that says
# so, the others are reported
UNREADABLE = (OSError, ValueError, TypeError, AttributeError, KeyError, yaml.YAMLError)


def _file(path: Path, kind: type, default: Any = None) -> Any:
    """A run's YAML or JSON file as data of `kind` (`default` when it is not there)."""
    if not path.is_file():
        if default is None:
            raise ValueError(f"{path}: missing")
        return default
    data = (json.loads if path.suffix == ".json" else yaml.safe_load)(path.read_text())
    data = kind() if data is None else data
    if not isinstance(data, kind):
        raise ValueError(f"{path}: expected a {'list' if kind is list else 'mapping'}")
    return data


def _scalars(path: Path) -> list[dict]:
    """scalars.json's records; a line that is no JSON record (the last one of a run still
    writing it) is left out."""
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(_unprefixed(record))
    return records


def _wall(scalars: Path) -> float:
    """Seconds from the start mmengine named its folder after to the last scalar written."""
    try:
        started = datetime.strptime(scalars.parent.parent.name, "%Y%m%d_%H%M%S").timestamp()
    except ValueError:
        return 0.0
    return max(0.0, scalars.stat().st_mtime - started)


def read_run(run_dir: Path, summary_jobs: dict[str, dict]) -> dict[str, Any]:
    """A run as the report shows it; a run whose files cannot be read is a row that says why."""
    try:
        return _read_run(run_dir, summary_jobs)
    except UNREADABLE as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        return {**job_row({"run_dir": str(run_dir), "status": "unreadable"}), "error": reason}


def _read_run(run_dir: Path, summary_jobs: dict[str, dict]) -> dict[str, Any]:
    overrides = [str(o) for o in _file(run_dir / OVERRIDES_FILE, list)]
    config = _file(run_dir / JOB_CONFIG_FILE, dict, {})
    hydra = _file(run_dir / HYDRA_FILE, dict, {})
    choices = ((hydra.get("hydra") or {}).get("runtime") or {}).get("choices") or {}
    train_cfg = config.get("train_cfg") or {}
    metrics = _file(run_dir / METRICS_FILE, dict, {})
    loss, miou, wall = [], [], 0.0
    for scalars in sorted(run_dir.glob(SCALARS_GLOB)):
        records = _scalars(scalars)
        loss += [(r["step"], r["loss"]) for r in records if "loss" in r]
        miou += [(r["step"], r["mIoU"]) for r in records if "mIoU" in r]
        wall += _wall(scalars)
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
        "error": job.get("error") if job.get("status") in ("failed", "unreadable") else None,
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
    lines = [line for line in trace.read_text(errors="replace").splitlines() if line.strip()]
    return (lines[-1].strip() if lines else "failed"), path


def sweep_jobs(root: Path, storage: str | None = None) -> list[dict]:
    """The jobs of every sweep at or below `root`: an Optuna search's from its study (every
    worker's trials as they stand now), another sweep's from its summary.json."""
    found = []
    for folder in sweep_dirs(root):
        jobs = study_of_sweep(folder, storage)
        if jobs is None:
            summary = _file(folder / SUMMARY_FILE, dict, {"jobs": []}) if _readable(folder) else {}
            jobs = [j for j in summary.get("jobs") or [] if isinstance(j, dict)]
        found += [_here(job, folder) for job in jobs]
    return found


def _here(job: dict, sweep_dir: Path) -> dict:
    """A job whose directory is in the sweep directory as it is here, named there: a sweep
    copied or moved keeps the paths of where it ran in its summary and study."""
    if job.get("run_dir"):
        local = sweep_dir / Path(str(job["run_dir"])).name
        if (local / OVERRIDES_FILE).is_file():
            return {**job, "run_dir": str(local)}
    return job


def _readable(folder: Path) -> bool:
    try:
        _file(folder / SUMMARY_FILE, dict, {})
    except UNREADABLE:
        return False
    return True


def search_sweeper(sweep_dir: Path) -> dict | None:
    """The Optuna sweeper's config a sweep directory's multirun.yaml records, or None."""
    try:
        recorded = _file(sweep_dir / MULTIRUN_FILE, dict, {})
    except UNREADABLE:
        return None
    sweeper = (recorded.get("hydra") or {}).get("sweeper")
    if not isinstance(sweeper, dict):
        return None
    return sweeper if str(sweeper.get("_target_", "")).endswith("SeglabOptunaSweeper") else None


def study_place(sweep_dir: Path, storage: str | None) -> tuple[str | None, str | None]:
    """(the storage URL to read a search's study from, or None; why it is not read).

    The study in the sweep directory's own optuna.db is read when that file is there. A study
    in a database the sweep names (`hydra.sweeper.storage`) is read only from a `storage=`
    the report's own command line gives: a directory from elsewhere must not make the report
    connect to a server it names, with the credentials this machine holds (PGPASSWORD, an
    `${oc.env:...}` in the URL)."""
    from seglab.masking import mask_text
    from seglab.run.study_storage import storage_url

    sweeper = search_sweeper(sweep_dir)
    if sweeper is None:
        return None, None
    named = sweeper.get("storage")
    if storage:
        return storage_url(storage, sweep_dir), None
    if not named:
        own = sweep_dir / OPTUNA_DB
        return (storage_url(None, sweep_dir), None) if own.is_file() else (None, None)
    return None, (
        f"{sweep_dir.name}: its study is in the database the sweep names "
        f"({mask_text(named)}), read from summary.json instead; to read the study, name the "
        "database: storage=URL"
    )


def search_study(sweep_dir: Path, storage: str | None = None) -> optuna.Study | None:
    """The Optuna study a sweep directory's search used, or None (not an Optuna search, or its
    study is not read from here: then its summary.json tells)."""
    import sqlalchemy

    url, _ = study_place(sweep_dir, storage)
    if url is None:
        return None
    from optuna import load_study

    from seglab.run.hparam_search import quiet_optuna
    from seglab.run.study_storage import study_name

    sweeper = search_sweeper(sweep_dir) or {}
    try:
        with quiet_optuna():
            return load_study(
                study_name=study_name(
                    {**sweeper, "storage": sweeper.get("storage") or storage}, sweep_dir
                ),
                storage=url,
            )
    except (KeyError, sqlalchemy.exc.SQLAlchemyError):
        return None


def study_of_sweep(sweep_dir: Path, storage: str | None = None) -> list[dict] | None:
    """The jobs of the Optuna study a sweep directory's search used, or None."""
    from seglab.run.hparam_search import study_jobs

    study = search_study(sweep_dir, storage)
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


def read_runs(root: Path, storage: str | None = None) -> list[dict]:
    """Every run at or below `root`, as `read_run` reads it, and a row for each job of its
    sweeps whose directory is not here (an Optuna trial of a worker on another machine). Each
    run records the `root` it was found under (its `source` in a report of several)."""
    jobs = sweep_jobs(root, storage)
    by_dir = {str(Path(str(j["run_dir"])).resolve()): j for j in jobs if j.get("run_dir")}
    runs = [read_run(d, by_dir) for d in find_runs(root)]
    here = {str(r["run_dir"].resolve()) for r in runs}
    elsewhere = [j for j in jobs if str(Path(str(j.get("run_dir") or "?")).resolve()) not in here]
    return [{**r, "source": root} for r in runs + [job_row(j) for j in elsewhere]]
