"""MLflow for mmseg runs (`logger=mlflow`), on mmengine's MLflowVisBackend.

mmengine's backend logs through MLflow's fluent API into a run of the process, logs the whole
exported config as params (a value under a key mmseg reads as it is, secret or not) and uploads
every .py, .json, .log and yaml file of the run directory when it closes. seglab's backend
(added to the Runner's visualizer when `logger=mlflow`; the exported config stays pure mmseg):
- logs every train and validation metric, per-class IoU and accuracy (`val/IoU.<class>`)
  included, against the training iteration, through a client bound to the run's own id;
- logs the composed Hydra config as params (dotted keys, values cut to MLflow's 6000
  characters, 100 a request) with the overrides, masked as wandb's are
  (tracking.tracked_config), and that config as config.yaml; at close it uploads metrics.json,
  vis_data/scalars.json and the run's log (which seglab's console masks), never config.py;
- groups a sweep's jobs as child runs of one parent per sweep directory (tag seglab.sweep_id),
  found again when the sweep is launched again and made once when jobs start together (a lock
  file in the sweep directory; where jobs cannot share it and two parents appear, the oldest
  is kept, the others are deleted and their jobs move under it when they end);
- continues the MLflow run of a resumed run (tag seglab.run_id: the run directory's id);
  MLflow's params cannot change, so a resumed run keeps its first values;
- checks before the run starts that an http(s) tracking server answers (MLflow's client
  retries for minutes): if not, one line names the key (train.tracked_run). A server lost
  during training costs one warning (and the retries of that request); the run trains on
  without MLflow.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from mmengine.visualization.vis_backend import MLflowVisBackend, force_init_env

from seglab.errors import ConfigError
from seglab.masking import mask_text, mask_urls
from seglab.run.tracking import TrackedRun, as_plain, group_choices, run_id, tracked_config
from seglab.run_dirs.files import MLFLOW_SWEEP_LOCK

DEFAULT_STORE = "mlflow.db"  # in outputs/, beside runs/ and sweeps/
DEFAULT_ARTIFACTS = "mlartifacts"
RUN_TAG, SWEEP_TAG, PARENT_TAG = "seglab.run_id", "seglab.sweep_id", "mlflow.parentRunId"
# MLflow's limits (mlflow.utils.validation): a param's value, a name, what one request carries
MAX_VALUE, MAX_NAME, PARAMS_PER_BATCH, METRICS_PER_BATCH = 6000, 250, 100, 1000
_BAD_NAME = re.compile(r"[^/\w.\- :]")
SERVER_TIMEOUT_S = 5
QUIET = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"


def tracking_uri(mlflow_cfg: dict) -> tuple[str, str | None]:
    """(the tracking URI, the key or variable that set it: None for seglab's default store)."""
    if mlflow_cfg.get("tracking_uri"):
        return str(mlflow_cfg["tracking_uri"]), "mlflow.tracking_uri"
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"], "MLFLOW_TRACKING_URI"
    return f"sqlite:///{Path('outputs', DEFAULT_STORE).resolve()}", None


def check_tracking_server(mlflow_cfg: dict) -> None:
    """An http(s) tracking server that does not answer is a ConfigError naming the key (or
    the variable) that set it."""
    uri, source = tracking_uri(mlflow_cfg)
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=SERVER_TIMEOUT_S)
    except requests.RequestException as err:
        reason = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(err))
        raise ConfigError(
            f"{source}={mask_urls(uri)}: no MLflow server answers there "
            f"({reason[1].strip() if reason else type(err).__name__}); start it, or point "
            f"{source} at one (logger=none trains without MLflow)"
        ) from None


def param_name(key: str) -> str:
    """`key` as MLflow accepts a param or metric name (letters, digits, `_-. :/`)."""
    name = re.sub(r"/{2,}", "/", _BAD_NAME.sub("_", key)).strip("/")
    return name[:MAX_NAME]


def flat_params(node: Any, key: str = "") -> dict[str, str]:
    """A config as MLflow params: dotted keys (a list of mappings by index), values as text."""
    if isinstance(node, dict) and node:
        items = node.items()
    elif isinstance(node, list) and any(isinstance(x, dict) for x in node):
        items = enumerate(node)
    else:
        text = node if isinstance(node, str) else json.dumps(node, default=str)
        return {param_name(key): text[:MAX_VALUE]} if key else {}
    flat: dict[str, str] = {}
    for k, v in items:
        flat.update(flat_params(v, f"{key}.{k}" if key else str(k)))
    return flat


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """No `View run NAME at: URL` from MLflow's client (the URL as given, credentials and all):
    seglab prints the address itself, masked."""
    before = os.environ.get(QUIET)
    os.environ[QUIET] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(QUIET, None)
        else:
            os.environ[QUIET] = before


@contextlib.contextmanager
def file_lock(path: str | os.PathLike | None) -> Iterator[None]:
    """One process at a time (an exclusive lock on the file `path`), where one can be taken."""
    handle = None
    if path:
        with contextlib.suppress(OSError):
            handle = open(path, "a")  # noqa: SIM115
            fcntl.flock(handle, fcntl.LOCK_EX)
    try:
        yield
    finally:
        if handle is not None:
            handle.close()  # and with it the lock


def store_lock_path(uri: str) -> str | None:
    """A SQLite store's lock file, beside it: MLflow creates the tables of a new store by
    migrations that fail when two processes run them at once (a sweep's parallel jobs)."""
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri[len("sqlite:///") :])
    database.parent.mkdir(parents=True, exist_ok=True)
    return f"{database}.lock"


class SeglabMLflowVisBackend(MLflowVisBackend):
    """mmengine's backend, logging into the run of its run directory through MlflowClient.

    `config`: what tracking.tracked_config gives; `run_key`: the run directory's id; `sweep`:
    {"id", "name", "dir"} of the sweep a job belongs to, or None.
    """

    def __init__(
        self,
        save_dir: str,
        exp_name: str = "seglab",
        run_name: str | None = None,
        tags: dict | None = None,
        tracking_uri: str | None = None,
        artifact_location: str | None = None,
        config: dict | None = None,
        run_key: str | None = None,
        sweep: dict | None = None,
        artifacts: bool = True,
    ) -> None:
        super().__init__(
            save_dir,
            exp_name=exp_name,
            run_name=run_name,
            tags=tags,
            tracking_uri=tracking_uri,
            artifact_suffix=(),
            artifact_location=artifact_location,
        )
        self._config = as_plain(config or {})
        self._run_key, self._sweep, self._artifacts = run_key, sweep, artifacts
        self._run_id: str | None = None
        self._lost = False  # the server stopped answering during training

    def _init_env(self) -> None:
        import mlflow
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        os.makedirs(self._save_dir, exist_ok=True)
        self._mlflow = mlflow
        try:
            with file_lock(store_lock_path(str(self._tracking_uri))):
                self._client = MlflowClient(self._tracking_uri)
                self._experiment = self._experiment_id()
                self._parent = self._parent_run(self._experiment) if self._sweep else None
                self._run_id = self._own_run(self._experiment, self._parent)
        except MlflowException as err:
            first = (mask_text(err.message).strip().splitlines() or [""])[0]
            raise ConfigError(f"MLflow at {mask_urls(str(self._tracking_uri))}: {first}") from None

    def _experiment_id(self) -> str:
        from mlflow.exceptions import MlflowException

        found = self._client.get_experiment_by_name(self._exp_name)
        if found is None:
            try:
                return self._client.create_experiment(
                    self._exp_name, artifact_location=self._artifact_location
                )
            except MlflowException:  # another job of the sweep made it first
                found = self._client.get_experiment_by_name(self._exp_name)
                if found is None:
                    raise
        if found.lifecycle_stage == "deleted":
            raise ConfigError(
                f"mlflow.experiment={self._exp_name}: the experiment is deleted in "
                f"{mask_urls(str(self._tracking_uri))}; restore it (mlflow experiments restore "
                f"--experiment-id {found.experiment_id}) or name another"
            )
        return found.experiment_id

    def _runs(self, experiment: str, tag: str, value: str) -> list:
        """The active runs tagged `tag=value`, oldest first."""
        runs = self._client.search_runs([experiment], f"tags.`{tag}` = '{value}'")
        return sorted(runs, key=lambda run: (run.info.start_time, run.info.run_id))

    def _parent_run(self, experiment: str) -> str:
        """The sweep's parent run: found by its tag, else made (and finished: it only groups)."""
        from mlflow.exceptions import MlflowException

        sweep = self._sweep
        with file_lock(sweep["dir"] and Path(sweep["dir"], MLFLOW_SWEEP_LOCK)):
            if not self._runs(experiment, SWEEP_TAG, sweep["id"]):
                tags = {SWEEP_TAG: sweep["id"], "seglab.sweep": sweep["name"]}
                made = self._client.create_run(experiment, tags=tags, run_name=sweep["name"])
                # deleted meanwhile: another job's was older
                with quiet_mlflow(), contextlib.suppress(MlflowException):
                    self._client.set_terminated(made.info.run_id)
            return self._oldest_parent(experiment)

    def _oldest_parent(self, experiment: str) -> str:
        """The oldest run tagged with the sweep's id. Jobs that could not share the lock may
        each have made one: the others are deleted (their jobs move under it when they end)."""
        from mlflow.exceptions import MlflowException

        oldest, *others = self._runs(experiment, SWEEP_TAG, self._sweep["id"])
        for other in others:
            with contextlib.suppress(MlflowException):  # deleted by another job just now
                self._client.delete_run(other.info.run_id)
        return oldest.info.run_id

    def _own_run(self, experiment: str, parent: str | None) -> str:
        """The run of this run directory: its earlier one (resumed), else a new one."""
        tags = {**(self._tags or {}), RUN_TAG: self._run_key}
        if parent is not None:
            tags[PARENT_TAG] = parent
        found = self._runs(experiment, RUN_TAG, self._run_key)
        if found:
            run = found[0]
            self._client.update_run(run.info.run_id, status="RUNNING")
            logged = run.data.params
        else:
            run = self._client.create_run(experiment, tags=tags, run_name=self._run_name)
            logged = {}
        run_id = run.info.run_id
        self._log_batch(run_id, tags=[(k, v) for k, v in tags.items() if k != "mlflow.runName"])
        # params cannot change in MLflow: a resumed run keeps those of its first start
        params = flat_params(self._config.get("hydra_config", {}))
        params["overrides"] = " ".join(self._config.get("overrides", []))[:MAX_VALUE]
        self._log_batch(run_id, params=[(k, v) for k, v in params.items() if k not in logged])
        if self._artifacts:
            config = yaml.safe_dump(self._config, sort_keys=False)
            self._client.log_text(run_id, config, "config.yaml")
        return run_id

    def _log_batch(self, run_id: str, params=(), tags=(), metrics=()) -> None:
        from mlflow.entities import Metric, Param, RunTag

        for i in range(0, len(params), PARAMS_PER_BATCH):
            chunk = params[i : i + PARAMS_PER_BATCH]
            self._client.log_batch(run_id, params=[Param(k, v) for k, v in chunk])
        for i in range(0, len(tags), PARAMS_PER_BATCH):
            chunk = tags[i : i + PARAMS_PER_BATCH]
            self._client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in chunk])
        now = int(time.time() * 1000)
        for i in range(0, len(metrics), METRICS_PER_BATCH):
            chunk = metrics[i : i + METRICS_PER_BATCH]
            batch = [Metric(k, v, now, step) for k, v, step in chunk]
            self._client.log_batch(run_id, metrics=batch)

    def _safely(self, log, *args: Any, **kwargs: Any) -> None:
        """`log(...)`, unless the server is lost: then one warning, and nothing more."""
        if self._lost:
            return
        try:
            log(*args, **kwargs)
        except Exception as err:  # never let the tracking server stop a training run
            self._lost = True
            first = (mask_text(str(err)).strip().splitlines() or [""])[0]
            warnings.warn(
                f"MLflow stopped answering ({type(err).__name__}: {first}); the run trains on "
                "without it",
                stacklevel=2,
            )

    @force_init_env
    def add_config(self, config, **kwargs: Any) -> None:
        """The composed Hydra config went in as params; mmengine's would log config.py."""

    @force_init_env
    def add_scalar(self, name: str, value, step: int = 0, **kwargs: Any) -> None:
        self.add_scalars({name: value}, step)

    @force_init_env
    def add_scalars(self, scalar_dict: dict, step: int = 0, file_path=None, **kwargs: Any) -> None:
        metrics = []
        for key, value in scalar_dict.items():
            with contextlib.suppress(TypeError, ValueError):  # a value that is no number
                metrics.append((param_name(key), float(value), int(step)))
        if self._run_id is not None:
            self._safely(self._log_batch, self._run_id, metrics=metrics)

    @force_init_env
    def add_image(self, name: str, image, step: int = 0, **kwargs: Any) -> None:
        if self._run_id is not None:
            log = self._client.log_image
            self._safely(log, self._run_id, image, key=param_name(name), step=step)

    def _settle_parent(self, run_id: str) -> None:
        parent = self._oldest_parent(self._experiment)
        if parent != self._parent:
            self._client.set_tag(run_id, PARENT_TAG, parent)

    def close(self) -> None:
        """Upload the run's metrics, curves and log, and end the run (once)."""
        run_id, self._run_id = self._run_id, None
        if run_id is None:
            return
        log_dir = Path(self._save_dir).parent  # <run dir>/<timestamp>/vis_data
        files = {log_dir.parent / "metrics.json": None}
        files[log_dir / "vis_data" / "scalars.json"] = f"{log_dir.name}/vis_data"
        files.update({log: log_dir.name for log in log_dir.glob("*.log")})
        for path, folder in files.items():
            if self._artifacts and path.is_file():
                self._safely(self._client.log_artifact, run_id, str(path), folder)
        if self._sweep:  # the parent another job kept, where two were made at once
            self._safely(self._settle_parent, run_id)
        # closed on an exception: from seglab's `finally` (release_singletons)
        failed = sys.exc_info()[1]
        status = "FINISHED" if failed is None else "FAILED"
        if isinstance(failed, (KeyboardInterrupt, SystemExit)):  # Ctrl-C, SIGTERM (Preempted)
            status = "KILLED"
        with quiet_mlflow():
            self._safely(self._client.set_terminated, run_id, status)
        uri = str(self._tracking_uri)
        if uri.startswith(("http://", "https://")) and not self._lost:
            address = f"{uri.rstrip('/')}/#/experiments/{self._experiment}/runs/{run_id}"
            print(f"seglab: MLflow run {mask_urls(address)}", flush=True)


def mlflow_additions(mm_cfg, mlflow_cfg: dict, run: TrackedRun) -> None:
    """Turn MLflow on for this Runner: seglab's backend beside mmengine's local one."""
    uri, source = tracking_uri(mlflow_cfg)  # checked before the export (check_tracking_server)
    config = tracked_config(run.hydra_config, run.overrides)
    tags = {f"seglab.{group}": option for group, option in group_choices(run.choices).items()}
    # the user's tags as the masked config holds them: a secret-looking one is not there
    tags.update((config["hydra_config"].get("mlflow") or {}).get("tags") or {})
    tags["seglab.run_dir"] = run.run_dir
    if config.get("git_commit"):
        tags["seglab.git_commit"] = config["git_commit"]
    sweep = None
    if run.sweep:
        sweep_dir = run.run_dir.parent
        sweep = {"id": run_id(sweep_dir), "name": run.sweep, "dir": str(sweep_dir)}
        tags["seglab.sweep"] = run.sweep
    backend = dict(
        type="SeglabMLflowVisBackend",
        exp_name=str(mlflow_cfg.get("experiment") or "seglab"),
        run_name=run.run_dir.name,
        tags=config_tags(tags),
        tracking_uri=uri,
        # seglab's default store keeps its artifacts beside it, in outputs/
        artifact_location=None if source else Path("outputs", DEFAULT_ARTIFACTS).resolve().as_uri(),
        config=config,
        run_key=run_id(run.run_dir),
        sweep=sweep,
        artifacts=bool(mlflow_cfg.get("artifacts", True)),
    )
    mm_cfg.visualizer.vis_backends = [*mm_cfg.visualizer.get("vis_backends", []), backend]


def config_tags(tags: dict[str, Any]) -> dict[str, str]:
    """Tags as MLflow takes them: names it accepts, values as text, masked."""
    return {param_name(str(k)): mask_text(str(v))[:MAX_VALUE] for k, v in tags.items()}
