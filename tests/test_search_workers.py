"""Many workers on one Optuna study: each `python -m seglab -m ...` of the same search is a worker;
they share n_trials, never fail one another's trials, and take over a trial whose worker died.
The shared database is a real PostgreSQL server started here (tests/helpers/postgres.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from seglab.cli import main
from tests.helpers import postgres
from tests.helpers.commands import QUICK, REPO, error_line, sweep

SEARCH = [
    *QUICK,
    "hydra/sweeper=seglab_optuna",
    "optim_wrapper.optimizer.lr=tag(log,interval(1e-4,1e-2))",
    "hydra.sweeper.pruner=null",
    # leases of a few seconds: a dead worker's trial is taken over within the test
    "hydra.sweeper.heartbeat_interval=1",
    "hydra.sweeper.grace_period=5",
]
TRAIN_LONGER = ["train_cfg.max_iters=30", "train_cfg.val_interval=30"]

needs_postgres = pytest.mark.skipif(
    postgres.available() is not None, reason=str(postgres.available())
)


@pytest.fixture
def database(monkeypatch, tmp_path):
    with postgres.server() as server:
        for name, value in server.env.items():
            monkeypatch.setenv(name, value)
        yield server


def worker(args: list[str]) -> subprocess.Popen:
    """`python -m seglab -m ARGS` in a session of its own (killed with its jobs as a group)."""
    return subprocess.Popen(
        [sys.executable, "-m", "seglab", "-m", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # a share of the cores each, as the README advises: with torch's default threads two
        # workers on 2 cores contend for them and train tens of times slower
        env={
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(REPO),
            "OMP_NUM_THREADS": "1",
        },
        start_new_session=True,
    )


def wait_for(condition, timeout: float = 240, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def ended(process: subprocess.Popen, timeout: float = 400) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def trials(storage) -> list[optuna.trial.FrozenTrial]:
    """The trials of the one study in `storage` (named after the sweep directory)."""
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage).trials


def sweep_dir() -> Path:
    (found,) = Path("outputs/sweeps").iterdir()
    return found


@pytest.mark.processes
@pytest.mark.train
def test_a_second_launch_of_a_running_sqlite_search_is_refused_and_the_first_finishes(capsys):
    first = worker([*SEARCH, *TRAIN_LONGER, "hydra.sweeper.n_trials=2"])
    wait_for(lambda: list(Path.cwd().glob("outputs/sweeps/*/trial-0/*/vis_data")), what="trial 0")

    line = error_line(["-m", *SEARCH, *TRAIN_LONGER, "hydra.sweeper.n_trials=2"], capsys, True)
    assert "being searched by worker" in line and "a sqlite study takes one worker" in line
    assert "hydra.sweeper.storage=postgresql://" in line

    code, output = ended(first)
    assert code == 0, output
    (db,) = Path("outputs/sweeps").glob("*/optuna.db")
    states = [t.state.name for t in trials(f"sqlite:///{db.resolve()}")]
    assert states == ["COMPLETE", "COMPLETE"], output


@pytest.mark.processes
@pytest.mark.train
@needs_postgres
@pytest.mark.parametrize("workers", [2, 3])
def test_workers_on_one_postgres_study_share_n_trials(database, workers, capsys):
    n_trials = 4
    command = [
        *SEARCH,
        f"hydra.sweeper.storage={database.url}",
        f"hydra.sweeper.n_trials={n_trials}",
    ]
    processes = [worker(command) for _ in range(workers)]
    results = [ended(p) for p in processes]
    assert [code for code, _ in results] == [0] * workers, results

    study = trials(database.url)
    # workers that ask at the same moment past n_trials: the later trial is marked surplus and
    # told failed before any job runs it (it does not count)
    surplus = [t for t in study if t.user_attrs.get("seglab_surplus")]
    assert all(t.state.name == "FAIL" and "seglab_job" not in t.user_attrs for t in surplus)
    study = [t for t in study if t not in surplus]
    states = [(t.number, t.state.name, t.user_attrs) for t in study]
    assert [t.state.name for t in study] == ["COMPLETE"] * n_trials, states  # none failed
    assert len({t.user_attrs["seglab_worker"] for t in study}) >= 2, "the trials were shared"
    assert len({t.params["optim_wrapper.optimizer.lr"] for t in study}) == n_trials
    run_dirs = [t.user_attrs["seglab_job"]["run_dir"] for t in study]
    assert sorted(Path(d).name for d in run_dirs) == [f"trial-{n}" for n in range(n_trials)]
    for trial, run_dir in zip(study, run_dirs, strict=True):
        metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
        assert metrics["mIoU"] == trial.value

    # whichever worker wrote it last, the summary is the study's
    summary = json.loads((sweep_dir() / "summary.json").read_text())
    assert (summary["finished"], summary["failed"]) == (n_trials, 0)
    assert sorted(j["trial"] for j in summary["jobs"]) == list(range(n_trials))
    # the password came from PGPASSWORD: no file and no line holds it
    password = database.env["PGPASSWORD"]
    assert not any(password in output for _, output in results)
    for path in Path("outputs").rglob("*"):
        if path.is_file() and path.suffix != ".pth":
            assert password.encode() not in path.read_bytes(), path

    # the report reads the study: every trial with its worker, also one whose directory is on
    # another machine (moved away here)
    shutil.move(run_dirs[0], "elsewhere")
    capsys.readouterr()
    main(["report", str(sweep_dir()), f"storage={database.url}"])  # the database, named here
    out = capsys.readouterr().out.splitlines()
    table = [line for line in out if line.startswith("| ") and "| --- |" not in line]
    assert table[0].startswith("| trial | worker |")
    assert len(table) == 1 + n_trials and sum("| finished |" in row for row in table) == n_trials
    workers_shown = {row.split("|")[2].strip() for row in table[1:]}
    assert workers_shown == {t.user_attrs["seglab_worker"] for t in study}


@pytest.mark.processes
@pytest.mark.train
@needs_postgres
def test_a_killed_workers_trial_is_taken_over_and_resumes_from_its_checkpoint(database):
    command = [
        *SEARCH,
        *TRAIN_LONGER,
        f"hydra.sweeper.storage={database.url}",
        "hydra.sweeper.n_trials=2",
    ]
    doomed = worker(command)
    wait_for(lambda: list(Path.cwd().glob("outputs/sweeps/*/trial-0/*/vis_data")), what="trial 0")
    survivor = worker(command)
    # (mmengine names the checkpoint in last_checkpoint once it is written whole)
    wait_for(lambda: list(Path.cwd().glob("outputs/sweeps/*/trial-0/last_checkpoint")), what="save")
    os.killpg(doomed.pid, signal.SIGKILL)  # the worker and its job, without a word
    doomed.wait()

    code, output = ended(survivor)
    assert code == 0, output
    study = trials(database.url)
    states = {t.number: t.state.name for t in study}
    assert states == {0: "FAIL", 1: "COMPLETE", 2: "COMPLETE"}, output
    retry = study[2]
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == 0
    assert retry.params == study[0].params
    assert retry.user_attrs["seglab_worker"] == study[1].user_attrs["seglab_worker"]
    # the retry ran in the first trial's directory and resumed from its checkpoint
    run_dir = Path(retry.user_attrs["seglab_job"]["run_dir"])
    assert run_dir.name == "trial-0"
    logs = sorted(run_dir.glob("*/*.log"))
    assert len(logs) == 2 and "resumed" in logs[-1].read_text()
    summary = json.loads((sweep_dir() / "summary.json").read_text())
    assert (summary["finished"], summary["failed"]) == (2, 0)


@pytest.mark.train
@pytest.mark.processes
def test_n_jobs_keeps_trials_in_flight_without_a_batch_barrier(tmp_path):
    """One long trial and three short ones with n_jobs=2: the short ones follow one another
    in the second slot while the long one runs (a batch would wait for it)."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="seglab", storage=url, direction="maximize")
    for max_iters in ("30", "2", "2", "2"):  # a choice's values are override strings
        study.enqueue_trial({"train_cfg.max_iters": max_iters})
    code, summary = sweep(
        [
            *QUICK,
            "hydra/sweeper=seglab_optuna",
            "hydra/launcher=cpu_parallel",
            "hydra.sweeper.pruner=null",
            f"hydra.sweeper.storage={url}",
            "hydra.sweeper.study_name=seglab",
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.n_jobs=2",
            "train_cfg.max_iters=choice(2,30)",
            "train_cfg.val_interval=2",
        ]
    )
    assert code == 0 and summary["finished"] == 4
    spans = {}
    for job in summary["jobs"]:
        run_dir = Path(job["run_dir"])
        started = (run_dir / ".hydra" / "config.yaml").stat().st_mtime
        spans[job["trial"]] = (started, (run_dir / "metrics.json").stat().st_mtime)
    assert spans[3][0] < spans[0][1], f"trial 3 waited for trial 0 to end: {spans}"


def test_n_jobs_with_the_in_process_launcher_is_one_line(capsys):
    line = error_line(
        ["-m", *QUICK, "hydra/sweeper=seglab_optuna", "hydra.sweeper.n_jobs=2"], capsys
    )
    assert "hydra.sweeper.n_jobs=2" in line and "hydra/launcher=cpu_parallel" in line


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("hydra.sweeper.storage=foo://bar", "expected a database URL"),
        ("hydra.sweeper.n_trials=0", "hydra.sweeper.n_trials=0: expected at least 1 trial"),
        ("hydra.sweeper.grace_period=30", "expected more than heartbeat_interval=60"),
        ("hydra.sweeper.heartbeat_interval=0", "expected seconds, at least 1"),
        ("hydra.sweeper.storage=sqlite:///", "expected sqlite:///PATH (a file)"),
        (
            "hydra.sweeper.storage=postgresql://seglab@127.0.0.1:1/optuna",
            "cannot open the study (connection failed",
        ),
    ],
)
def test_a_storage_or_budget_that_cannot_work_is_one_line(override, expected, capsys):
    line = error_line(["-m", *QUICK, "hydra/sweeper=seglab_optuna", override], capsys)
    assert expected in line


def test_a_password_in_the_storage_url_is_refused(capsys):
    line = error_line(
        [
            "-m",
            *QUICK,
            "hydra/sweeper=seglab_optuna",
            "hydra.sweeper.storage=postgresql://seglab:hunter2@127.0.0.1:5/optuna",
        ],
        capsys,
    )
    assert "hunter2" not in line and "PGPASSWORD" in line


def test_a_sqlite_file_on_a_network_file_system_is_named():
    from seglab.run.study_storage import mount_type

    mounts = [
        "/dev/vda1 / ext4 rw 0 0",
        "server:/export /shared nfs4 rw 0 0",
        "tmpfs /shared/tmp tmpfs rw 0 0",
    ]
    assert mount_type(mounts, Path("/shared/sweeps/x")) == "nfs4"
    assert mount_type(mounts, Path("/shared/tmp/x")) == "tmpfs"
    assert mount_type(mounts, Path("/sharedness")) == "ext4"


@pytest.mark.processes
@pytest.mark.train
def test_workers_on_a_journal_file_share_n_trials(tmp_path):
    """Optuna's journal file, for machines that share only a file system (no leases)."""
    journal = tmp_path / "study.journal"
    command = [*SEARCH, f"hydra.sweeper.storage=journal:{journal}", "hydra.sweeper.n_trials=3"]
    results = [ended(p) for p in [worker(command), worker(command)]]
    assert [code for code, _ in results] == [0, 0], results
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    study = trials(JournalStorage(JournalFileBackend(str(journal))))
    assert [t.state.name for t in study] == ["COMPLETE"] * 3
    assert len({t.user_attrs["seglab_worker"] for t in study}) == 2


@pytest.mark.processes
@pytest.mark.train
@needs_postgres
def test_a_database_outage_longer_than_the_grace_period_loses_no_trial(database):
    """The database stops for longer than a lease's grace period while two workers train: the
    leases are renewed once it is back, and every trial ends once, finished."""
    command = [
        *SEARCH,
        *TRAIN_LONGER,
        "train_cfg.max_iters=60",
        f"hydra.sweeper.storage={database.url}",
        "hydra.sweeper.n_trials=2",
    ]
    processes = [worker(command), worker(command)]
    wait_for(
        lambda: len(list(Path.cwd().glob("outputs/sweeps/*/trial-*/iter_2.pth"))) == 2,
        what="both trials training",
    )
    database.pause(8)  # longer than grace_period=5
    results = [ended(p) for p in processes]
    assert [code for code, _ in results] == [0, 0], results
    study = trials(database.url)
    assert [t.state.name for t in study] == ["COMPLETE", "COMPLETE"], results


@pytest.mark.processes
@pytest.mark.train
@needs_postgres
def test_two_searches_on_one_database_get_studies_of_their_own(database, capsys):
    first = [
        *QUICK,
        "hydra/sweeper=seglab_optuna",
        "hydra/sweeper/pruner=none",
        f"hydra.sweeper.storage={database.url}",
        "hydra.sweeper.n_trials=1",
    ]
    main(["-m", *first, "optim_wrapper.optimizer.lr=interval(1e-4,1e-2)"])
    weight_decay = "optim_wrapper.optimizer.weight_decay=interval(0,0.1)"
    main(["-m", *first, weight_decay])
    assert len(optuna.get_all_study_names(database.url)) == 2, "one study per search"
    # one study named for both: the second is refused before any trial
    main(
        [
            "-m",
            *first,
            "optim_wrapper.optimizer.lr=interval(1e-4,1e-2)",
            "hydra.sweeper.study_name=shared",
        ]
    )
    line = error_line(
        ["-m", *first, weight_decay, "hydra.sweeper.study_name=shared"], capsys, trained=True
    )
    assert "give this search a study of its own: hydra.sweeper.study_name=NAME" in line


def test_a_database_url_keeps_its_user_and_masks_its_password():
    """A printed command (Ctrl-C's `the same command continues`) must still name the role."""
    from seglab.masking import mask_urls

    plain = "postgresql+psycopg://seglab@127.0.0.1:5432/optuna"
    assert mask_urls(plain) == plain
    masked = mask_urls("postgresql://seglab:hunter2@127.0.0.1/optuna")
    assert "seglab:masked-" in masked and "hunter2" not in masked
    assert "ghp_token" not in mask_urls("https://ghp_token@github.com/org/repo")
