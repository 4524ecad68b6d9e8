"""logger=mlflow against a real MLflow tracking server (one per module), read back with its
client: metrics at their iterations, per-class IoU, params and tags without secrets, a sweep's
jobs under one parent run, a resumed run continuing its own MLflow run."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from seglab.cli import main
from tests.helpers.commands import QUICK, error_line, sweep, train
from tests.helpers.mlflow_server import mlflow_server

pytestmark = [pytest.mark.train, pytest.mark.processes]

RUN = [
    *QUICK,
    "logger=mlflow",
    "train_cfg.max_iters=6",
    "train_cfg.val_interval=3",
    "default_hooks.logger.interval=2",
    "default_hooks.checkpoint.interval=3",
]
LITERAL = "s3cr3t-mlflow-value-123"
PASSWORD = "p4ssw0rd-mlflow-456"
ENV_SECRET = "env-s3cr3t-mlflow-789"  # $SEGLAB_TEST_SECRET, as a tag of the user's
ENV_DATA = "env-data-mlflow-000"  # $SEGLAB_TEST_DATA, under a key the user added
VALUES = (LITERAL, PASSWORD, ENV_SECRET, ENV_DATA)
SECRETS = [
    f"+mlflow.api_token={LITERAL}",
    f"+custom.password={PASSWORD}",
    "+custom.data_dir=${oc.env:SEGLAB_TEST_DATA}",
    "+mlflow.tags.origin=${oc.env:SEGLAB_TEST_SECRET}",
]
CLASSES = ("background", "square", "disc", "triangle")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    started = time.monotonic()
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as running:
        print(f"mlflow server answered after {time.monotonic() - started:.1f} s")
        yield running


@pytest.fixture(autouse=True)
def no_tracking_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def client(server):
    from mlflow.tracking import MlflowClient

    return MlflowClient(server.uri)


def runs(server, experiment: str) -> list:
    """The experiment's active runs, oldest first."""
    found = client(server).get_experiment_by_name(experiment)
    listed = client(server).search_runs([found.experiment_id], order_by=["attributes.start_time"])
    return list(listed)


def steps(server, run, key: str) -> list[int]:
    return [m.step for m in client(server).get_metric_history(run.info.run_id, key)]


def test_metrics_at_their_iterations_params_and_no_secret(server, monkeypatch):
    monkeypatch.setenv("SEGLAB_TEST_SECRET", ENV_SECRET)
    monkeypatch.setenv("SEGLAB_TEST_DATA", ENV_DATA)
    args = [*RUN, f"mlflow.tracking_uri={server.uri}", "mlflow.experiment=metrics", *SECRETS]
    run_dir = train(args)
    (run,) = runs(server, "metrics")
    assert run.info.run_name == run_dir.name and run.info.status == "FINISHED"
    assert steps(server, run, "train/loss") == [2, 4, 6]
    assert steps(server, run, "val/mIoU") == [3, 6], "validation lands where it was measured"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert run.data.metrics["val/mIoU"] == pytest.approx(metrics["mIoU"], abs=1e-3)
    for name in CLASSES:
        assert steps(server, run, f"val/IoU.{name}") == [3, 6]
        assert run.data.metrics[f"val/IoU.{name}"] == pytest.approx(
            metrics[f"IoU.{name}"], abs=1e-3
        )

    params, tags = run.data.params, run.data.tags
    assert params["train_cfg.max_iters"] == "6" and params["model.backbone.depth"] == "18"
    assert params["train_dataloader.dataset.pipeline.0.type"] == "LoadImageFromFile"
    assert "logger=mlflow" in params["overrides"].split()
    assert "+custom.password=masked-" in params["overrides"]
    assert "custom.password" not in params and "mlflow.api_token" not in params
    assert params["custom.data_dir"].startswith("masked-")
    assert tags["seglab.experiment"] == "demo" and tags["seglab.model"] == "upernet_r18-tiny"
    assert tags["origin"].startswith("masked-"), "a tag of the user's, read from the environment"
    everything = json.dumps([params, tags, run.info.run_name, run_dir.name])
    assert not [v for v in VALUES if v in everything]

    # the artifacts: the masked config, metrics, curves and the log; config.py stays home
    folder = server.artifacts / run.info.experiment_id / run.info.run_id / "artifacts"
    uploaded = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    (log_dir,) = [p for p in run_dir.iterdir() if (p / "vis_data").is_dir()]
    assert uploaded == {
        "config.yaml",
        "metrics.json",
        f"{log_dir.name}/vis_data/scalars.json",
        f"{log_dir.name}/{log_dir.name}.log",
    }
    for name in uploaded:
        assert not [v for v in VALUES if v in (folder / name).read_text()], name


def test_a_sweep_is_one_parent_run_found_again_when_launched_again(server):
    args = [
        *QUICK,
        "logger=mlflow",
        f"mlflow.tracking_uri={server.uri}",
        "mlflow.experiment=sweep",
        "optim_wrapper.optimizer.lr=0.004,0.002",
    ]
    code, summary = sweep(args)
    assert code == 0
    (sweep_dir,) = Path("outputs/sweeps").iterdir()
    (parent,) = [r for r in runs(server, "sweep") if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.run_name == sweep_dir.name
    children = [r for r in runs(server, "sweep") if "mlflow.parentRunId" in r.data.tags]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    job_dirs = [Path(j["run_dir"]) for j in summary["jobs"]]
    assert sorted(r.info.run_name for r in children) == sorted(d.name for d in job_dirs)

    # the first job stopped after its checkpoint at 2: launched again, the sweep resumes it
    (job_dirs[0] / "iter_4.pth").unlink()
    (job_dirs[0] / "metrics.json").unlink()
    (interrupted,) = [r for r in children if r.info.run_name == job_dirs[0].name]
    before = steps(server, interrupted, "train/loss")
    code, _ = sweep(args)
    assert code == 0
    again = runs(server, "sweep")
    assert len(again) == 3, "the same parent and the same two children"
    (same,) = [r for r in again if r.info.run_name == job_dirs[0].name]
    assert same.info.run_id == interrupted.info.run_id
    assert same.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert sorted(steps(server, same, "train/loss")) == sorted([*before, 3, 4])


def test_jobs_starting_at_once_share_one_parent(server, tmp_path):
    """Four jobs of one sweep start at once, without the lock file (a file system that cannot
    share one): whatever parents they make, one is left, and every job ends under it."""
    from seglab.run.mlflow_logging import SeglabMLflowVisBackend

    sweep_id = {"id": "0123456789abcdef", "name": "at-once", "dir": None}
    backends = [
        SeglabMLflowVisBackend(
            str(tmp_path / f"job{i}" / "log" / "vis_data"),
            exp_name="at-once",
            run_name=f"job{i}",
            tracking_uri=server.uri,
            run_key=f"job{i}",
            sweep=sweep_id,
        )
        for i in range(4)
    ]
    start = threading.Barrier(len(backends))

    def job(backend) -> None:
        start.wait()
        backend._init_env()
        backend.close()

    with ThreadPoolExecutor(len(backends)) as pool:
        list(pool.map(job, backends))
    found = runs(server, "at-once")
    (parent,) = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in found if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.info.run_name for r in children) == [f"job{i}" for i in range(4)]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}


def _start_job(store: str, sweep_dir: str, i: int, start) -> None:
    from seglab.run.mlflow_logging import SeglabMLflowVisBackend

    sweep_id = {"id": "fedcba9876543210", "name": "parallel", "dir": sweep_dir}
    backend = SeglabMLflowVisBackend(
        f"{sweep_dir}/job{i}/log/vis_data",
        run_name=f"job{i}",
        tracking_uri=store,
        run_key=f"job{i}",
        sweep=sweep_id,
    )
    start.wait()
    backend._init_env()
    backend.close()


def test_parallel_jobs_make_a_new_sqlite_store_together(tmp_path):
    """A sweep's parallel jobs (cpu_parallel) all start on seglab's default store before it
    exists: MLflow's table migrations would fail in all but one of them."""
    import multiprocessing

    store = f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}"
    context = multiprocessing.get_context("fork")
    start = context.Barrier(3)
    jobs = [
        context.Process(target=_start_job, args=(store, str(tmp_path), i, start)) for i in range(3)
    ]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(120)
    assert [job.exitcode for job in jobs] == [0, 0, 0]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    found = client.search_runs([client.get_experiment_by_name("seglab").experiment_id])
    (parent,) = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    assert (
        sorted(r.data.tags.get("mlflow.parentRunId") for r in found if r is not parent)
        == [parent.info.run_id] * 3
    )


def test_a_resumed_run_continues_its_mlflow_run(server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)  # the variable is honoured
    args = [*RUN, "mlflow.experiment=resume"]
    run_dir = train(args)
    (run_dir / "iter_6.pth").unlink()  # stopped before its end: resume=true has work to do
    main([*args, "resume=true"])
    (run,) = runs(server, "resume")
    assert run.info.status == "FINISHED"
    assert steps(server, run, "train/loss") == [2, 4, 6, 4, 6], "resumed from iteration 3"
    assert steps(server, run, "val/mIoU") == [3, 6, 6]
    assert run.data.params["resume"] == "false", "params keep their first values"


def test_an_unreachable_server_is_one_line_before_training(capsys):
    line = error_line([*RUN, "mlflow.tracking_uri=http://127.0.0.1:9"], capsys)
    assert "mlflow.tracking_uri=http://127.0.0.1:9: no MLflow server answers" in line
    assert not list(Path("outputs/runs").iterdir()), "a refused command leaves no directory"
