"""Secrets on the command line: in no directory name, no wandb file, no line seglab prints.

Four kinds are tried at once: a secret-looking key that only seglab reads (`+wandb.api_token`),
one that reaches the exported config because the user made it an mmengine key
(`+custom.password`), and an `${oc.env:VAR}` value of each kind; plus wandb's API key.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seglab.report import report
from tests.helpers import wandb_records
from tests.helpers.commands import QUICK, sweep, train

API_KEY = "0123456789abcdef-fake-wandb-api-key"
LITERAL = "s3cr3t-value-123"
PASSWORD = "p4ssw0rd-value-456"
ENV_SECRET = "env-s3cr3t-value-789"  # $SEGLAB_TEST_SECRET, read by a seglab-only key
ENV_DATA = "env-data-value-000"  # $SEGLAB_TEST_DATA, read by an mmengine key
VALUES = (LITERAL, PASSWORD, ENV_SECRET, ENV_DATA)
SECRETS = [
    f"+wandb.api_token={LITERAL}",
    "+wandb.origin=${oc.env:SEGLAB_TEST_SECRET}",
    f"+custom.password={PASSWORD}",
    "+custom.data_dir=${oc.env:SEGLAB_TEST_DATA}",
]
WANDB = ["logger=wandb", "default_hooks.logger.interval=2", "wandb.log_images=1"]


@pytest.fixture(autouse=True)
def secrets_in_the_environment(monkeypatch):
    monkeypatch.setenv("SEGLAB_TEST_SECRET", ENV_SECRET)
    monkeypatch.setenv("SEGLAB_TEST_DATA", ENV_DATA)
    monkeypatch.setenv("WANDB_API_KEY", API_KEY)
    monkeypatch.setenv("WANDB_MODE", "offline")  # a key, but no network here
    monkeypatch.setenv("HOME", str(Path.cwd()))  # no ~/.netrc


def files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def holding(path: Path, values) -> list[str]:
    data = path.read_bytes()
    return [v for v in values if v.encode() in data]


def test_secret_values_are_masked_and_told_apart():
    from seglab.masking import mask_override, mask_overrides

    masked = mask_override(f"+wandb.api_token={LITERAL}")
    assert masked.startswith("+wandb.api_token=masked-") and LITERAL not in masked
    assert mask_override("+wandb.api_token=other") != masked, "two secrets, two names"
    assert mask_override(masked) == masked, "masking twice changes nothing"
    assert mask_overrides(["optim_wrapper.optimizer.lr=0.01", "model=fcn_unet-tiny", "-m"]) == [
        "optim_wrapper.optimizer.lr=0.01",
        "model=fcn_unet-tiny",
        "-m",
    ]
    for override in ("dataset.data_root=${oc.env:DATA}/ade", "~custom.PASSWORD=x", "a.key=1,2"):
        assert mask_override(override).split("=", 1)[1].startswith("masked-"), override


@pytest.mark.train
def test_a_run_keeps_its_secrets_out_of_its_name_wandb_and_header():
    run_dir = train([*QUICK, *WANDB, "train_cfg.max_iters=2", "train_cfg.val_interval=2", *SECRETS])
    assert not [v for v in VALUES if v in str(run_dir)], run_dir
    # (a name keeps the overrides that fit in 80 characters and a hash of all, masked)
    assert run_dir.name.startswith("experiment=demo,")

    (wandb_dir,) = run_dir.glob("*/vis_data/wandb")
    for path in files(wandb_dir):  # the run file, its logs, metadata: everything wandb wrote
        assert not holding(path, [*VALUES, API_KEY]), path
    for path in files(run_dir):
        assert not holding(path, [API_KEY, ENV_SECRET]), path
        if ".hydra" not in path.relative_to(run_dir).parts:  # Hydra's record of the command
            assert not holding(path, [LITERAL]), path
    header = [line for line in (run_dir / "config.py").read_text().splitlines() if line[:1] == "#"]
    assert "seglab overrides:" in "\n".join(header)
    assert not [v for v in VALUES if v in "\n".join(header)]

    # wandb still gets the overrides and the command line, masked, and the config minus secrets
    (path,) = run_dir.glob("*/vis_data/wandb/offline-run-*/run-*.wandb")
    info = wandb_records.run_info(path)
    assert info["name"] == run_dir.name
    overrides = info["config"]["overrides"]
    assert "+custom.password=masked-" in " ".join(overrides) and "logger=wandb" in overrides
    custom = info["config"]["hydra_config"]["custom"]
    assert "password" not in custom and custom["data_dir"].startswith("masked-")
    args = wandb_records.environment(path)["args"]
    assert "logger=wandb" in args and "+wandb.origin=masked-" in " ".join(args)


@pytest.mark.train
def test_a_sweep_keeps_its_secrets_out_of_its_names_summary_and_output(capsys):
    # seglab-only keys: mmengine prints the config it trains with, an mmengine key's value too
    tokens = ["s3cr3t-a-111", "s3cr3t-b-222"]
    env = "+wandb.origin=${oc.env:SEGLAB_TEST_SECRET}"
    code, summary = sweep([*QUICK, *WANDB, f"+wandb.api_token={','.join(tokens)}", env])
    assert code == 0
    values = [*tokens, ENV_SECRET]
    (sweep_dir,) = Path("outputs/sweeps").iterdir()
    assert sweep_dir.name.startswith("experiment=demo,")
    run_dirs = [Path(j["run_dir"]) for j in summary["jobs"]]
    assert len(set(run_dirs)) == 2, "two secrets, two job directories"
    for run_dir in run_dirs:
        assert run_dir.parent.name == sweep_dir.name
        assert run_dir.name.startswith("api_token=masked-")
        assert not [v for v in values if v in str(run_dir)], run_dir
        (wandb_dir,) = run_dir.glob("*/vis_data/wandb")
        for path in files(wandb_dir):
            assert not holding(path, [*values, API_KEY]), path
        for path in files(run_dir):
            assert not holding(path, [API_KEY, ENV_SECRET]), path
        info = wandb_records.run_info(next(wandb_dir.glob("offline-run-*/run-*.wandb")))
        assert info["group"] == sweep_dir.name and info["name"] == run_dir.name
    assert not holding(sweep_dir / "summary.json", values)
    table = report(str(sweep_dir))  # the swept column: two masked values
    assert table.count("masked-") >= 2 and not [v for v in values if v in table]
    assert json.loads((sweep_dir / "summary.json").read_text())["finished"] == 2
    printed = capsys.readouterr()  # Hydra's launcher lists each job; seglab, the outcomes
    assert "#1 : " in printed.out + printed.err and "seglab sweep: 2 finished" in printed.out
    assert not [v for v in values if v in printed.out + printed.err]
