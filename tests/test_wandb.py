"""logger=wandb, checked by reading the offline run files back."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from seglab.cli import main
from tests.helpers import wandb_records
from tests.helpers.commands import QUICK, REPO, sweep, train

pytestmark = pytest.mark.train

RUN = [
    *QUICK,
    "logger=wandb",
    "train_cfg.max_iters=6",
    "train_cfg.val_interval=3",
    "default_hooks.logger.interval=2",
    "default_hooks.checkpoint.interval=3",
]


@pytest.fixture(autouse=True)
def no_wandb_account(monkeypatch):
    """As on a machine with no API key: seglab must choose offline by itself."""
    for var in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(Path.cwd()))  # no ~/.netrc with a key


def readme_sync_paths() -> list[Path]:
    """What the README's `wandb sync` globs match in the working directory."""
    readme = (REPO / "README.md").read_text()
    (line,) = [x for x in readme.splitlines() if x.startswith("wandb sync ")]
    return [p for pattern in line.split("#")[0].split()[2:] for p in Path().glob(pattern)]


def wandb_files(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("*/vis_data/wandb/offline-run-*/run-*.wandb"))


def test_metrics_at_their_iterations_per_class_images_and_config():
    # the user's project is a git repository: its commit is logged
    git = ["git", "-c", "user.name=u", "-c", "user.email=u@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    Path("train_notes.txt").write_text("project file\n")
    subprocess.run([*git, "add", "train_notes.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "start"], check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    run_dir = train(RUN)
    (path,) = wandb_files(run_dir)
    rows = wandb_records.history(path)
    train_rows = [r for r in rows if "train/loss" in r]
    val_rows = [r for r in rows if "val/mIoU" in r]
    assert [r["iter"] for r in train_rows] == [2, 4, 6]
    assert [r["iter"] for r in val_rows] == [3, 6], "validation lands where it was measured"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert val_rows[-1]["val/mIoU"] == pytest.approx(metrics["mIoU"], abs=1e-3)
    for name in ("background", "square", "disc", "triangle"):
        assert f"val/IoU.{name}" in val_rows[-1] and f"val/Acc.{name}" in val_rows[-1]
    # wandb stores a table and an image list as nested keys
    assert val_rows[-1]["val/per_class/nrows"] == 4
    assert val_rows[-1]["val/per_class/_type"] == "table-file"
    images = [r for r in rows if "val/predictions/count" in r]
    assert [r["iter"] for r in images] == [3, 6]
    assert images[0]["val/predictions/count"] == 4
    masks = images[0]["val/predictions/all_masks"][0]
    assert {"prediction", "ground_truth"} <= set(masks)

    info = wandb_records.run_info(path)
    assert info["name"] == run_dir.name and info["project"] == "seglab"
    assert "experiment:demo" in info["tags"] and "model:upernet_r18-tiny" in info["tags"]
    config = info["config"]
    assert config["hydra_config"]["train_cfg"]["max_iters"] == 6
    assert "logger=wandb" in config["overrides"]
    assert config["git_commit"] in (head.strip(), head.strip() + "+dirty")
    best = max(r["val/mIoU"] for r in val_rows)
    assert wandb_records.summary(path)["val/mIoU"]["max"] == pytest.approx(best, abs=1e-3)
    assert not list(Path.cwd().glob("**/code/*.py")), "no code upload"


def test_no_api_key_reaches_the_run_directory(monkeypatch):
    secret = "0123456789abcdef-seglab-test-key"
    monkeypatch.setenv("WANDB_API_KEY", secret)
    monkeypatch.setenv("WANDB_MODE", "offline")  # a key, but no network here
    run_dir = train([*RUN, "train_cfg.max_iters=3"])
    assert wandb_files(run_dir)
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_sweep_jobs_are_grouped_and_named_after_their_overrides():
    code, summary = sweep([*RUN, "train_cfg.max_iters=3", "optim_wrapper.optimizer.lr=0.004,0.002"])
    assert code == 0
    infos = [wandb_records.run_info(wandb_files(Path(j["run_dir"]))[0]) for j in summary["jobs"]]
    (sweep_dir,) = Path("outputs/sweeps").iterdir()
    assert {i["group"] for i in infos} == {sweep_dir.name}
    assert [i["name"] for i in infos] == [Path(j["run_dir"]).name for j in summary["jobs"]]
    # the README's `wandb sync` command finds every job's offline run
    synced = {p.resolve() for p in readme_sync_paths()}
    assert synced == {wandb_files(Path(j["run_dir"]))[0].parent.resolve() for j in summary["jobs"]}


def test_a_resumed_run_continues_the_same_wandb_run():
    run_dir = train(RUN)
    (run_dir / "iter_6.pth").unlink()  # stopped before its end: resume=true has work to do
    main([*RUN, "resume=true"])
    first, second = wandb_files(run_dir)
    assert wandb_records.run_info(first)["id"] == wandb_records.run_info(second)["id"]


def test_an_unreachable_server_does_not_stop_training(monkeypatch):
    """A key, online mode, and a wandb server that refuses connections (a closed loopback port)."""
    monkeypatch.setenv("WANDB_API_KEY", "f" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "15")
    run_dir = train([*RUN, "train_cfg.max_iters=3", "wandb.mode=online"])
    assert json.loads((run_dir / "metrics.json").read_text())["iter"] == 3
    (path,) = wandb_files(run_dir)  # it fell back to an offline run
    assert [r["iter"] for r in wandb_records.history(path) if "val/mIoU" in r] == [3]
