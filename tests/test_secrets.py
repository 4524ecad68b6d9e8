"""Secrets on the command line: in no directory name, no wandb file, no line seglab prints.

Several kinds are tried at once: a secret-looking key that only seglab reads
(`+wandb.api_token`), one under a top-level key the user added and no mmseg class reads
(`+custom.password`, kept out of the export), an `${oc.env:VAR}` value of each kind, a value
that interpolates a secret (`+db.dsn=postgres://u:${db.password}@h/db`); plus wandb's API key.
Error lines, a sweep's summary, tracebacks and reports mask the values they name.
"""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest
import yaml

from seglab.report.command import report
from seglab.run_dirs.files import TRACEBACK_FILE
from tests.helpers import wandb_records
from tests.helpers.commands import QUICK, SMALL_SYNTHETIC, error_line, sweep, train

API_KEY = "0123456789abcdef-fake-wandb-api-key"
LITERAL = "s3cr3t-value-123"
PASSWORD = "p4ssw0rd-value-456"
ENV_SECRET = "env-s3cr3t-value-789"  # $SEGLAB_TEST_SECRET, read by a seglab-only key
ENV_DATA = "env-data-value-000"  # $SEGLAB_TEST_DATA, read by a key the user added
ENV_DB = "env-db-value-321"  # $SEGLAB_TEST_DB, a password that a DSN interpolates
ENV_LR = "env-lr-value-654"  # $SEGLAB_TEST_LR, where a number is expected: an error names it
VALUES = (LITERAL, PASSWORD, ENV_SECRET, ENV_DATA, ENV_DB)
SECRETS = [
    f"+wandb.api_token={LITERAL}",
    "+wandb.origin=${oc.env:SEGLAB_TEST_SECRET}",
    f"+custom.password={PASSWORD}",
    "+custom.data_dir=${oc.env:SEGLAB_TEST_DATA}",
    "+db.password=${oc.env:SEGLAB_TEST_DB}",
    "+db.dsn=postgres://u:${db.password}@h/db",
]
WANDB = ["logger=wandb", "default_hooks.logger.interval=2", "wandb.log_images=1"]


@pytest.fixture(autouse=True)
def secrets_in_the_environment(monkeypatch):
    monkeypatch.setenv("SEGLAB_TEST_SECRET", ENV_SECRET)
    monkeypatch.setenv("SEGLAB_TEST_DATA", ENV_DATA)
    monkeypatch.setenv("SEGLAB_TEST_DB", ENV_DB)
    monkeypatch.setenv("SEGLAB_TEST_LR", ENV_LR)
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
    for path in files(run_dir):  # config.py, mmengine's log, checkpoints, Hydra's record
        assert not holding(path, [API_KEY, *VALUES]), path
    exported = (run_dir / "config.py").read_text()
    assert "custom=" not in exported and "db=" not in exported, "keys no mmseg class reads"
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
    db = info["config"]["hydra_config"]["db"]
    assert "password" not in db and db["dsn"].startswith("masked-"), db
    assert "+db.dsn=masked-" in " ".join(overrides)
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


# --- without training -----------------------------------------------------------------------


def test_a_mask_needs_the_machines_key(monkeypatch, tmp_path):
    """A short password cannot be found again by hashing candidates: the mask is keyed with
    random bytes kept under the user's cache, readable by the user alone."""
    from seglab.masking import MASKED, mask_value

    monkeypatch.setenv("SEGLAB_CACHE", str(tmp_path / "one"))
    first = mask_value("pw12")
    assert MASKED.fullmatch(first) and len(first) == len("masked-") + 16
    assert mask_value("pw12") == first, "the same value, the same name (a relaunched sweep)"
    key = tmp_path / "one" / "masking-key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32
    monkeypatch.setenv("SEGLAB_CACHE", str(tmp_path / "two"))
    assert mask_value("pw12") != first, "another key, another mask: nothing to guess against"
    monkeypatch.setenv("SEGLAB_CACHE", str(tmp_path / "one"))
    assert mask_value("pw12") == first


def test_credential_keys_and_urls_are_masked():
    from seglab.masking import mask_override

    for key in ("+db.passwd", "+db.pwd", "+gcs.credentials", "+api.auth", "+http.authorization"):
        masked = mask_override(f"{key}=hunter2")
        assert masked.startswith(f"{key}=masked-") and "hunter2" not in masked, masked
    url = "model.pretrained=https://user:t0ken-abc@example.com/w.pth?x=1&token=qu3ry-abc"
    masked = mask_override(url)
    assert "t0ken-abc" not in masked and "qu3ry-abc" not in masked, masked
    assert masked.startswith("model.pretrained=https://masked-") and "x=1" in masked
    from seglab.masking import mask_text

    line = mask_text(f"cannot load {url.split('=', 1)[1]}: HTTP 404")
    assert "t0ken-abc" not in line and "qu3ry-abc" not in line and "HTTP 404" in line


def test_the_launchers_line_masks_a_secret_with_spaces():
    from seglab.masking import MaskingFilter

    for value in ("correct\\ horse\\ battery", "correct horse battery"):
        job = f"+db.password={value} lr=0.01"
        record = logging.LogRecord("hydra", logging.INFO, __file__, 1, "\t#0 : %s", (job,), None)
        MaskingFilter().filter(record)
        line = record.getMessage()
        assert "horse" not in line and "battery" not in line and "+db.password=masked-" in line
        assert line.endswith(" lr=0.01"), line


def test_error_lines_mask_the_values_they_resolve(capsys):
    """`lr=${oc.env:...}` where a number belongs, a URL with a token, a data root read from the
    environment that does not exist: each error names the key, never the secret."""
    line = error_line(
        ["experiment=demo", "optim_wrapper.optimizer.lr=${oc.env:SEGLAB_TEST_LR}"], capsys
    )
    assert ENV_LR not in line and "optim_wrapper.optimizer.lr=" in line and "masked-" in line
    url = "https://user:t0ken-abc@example.invalid/runs/x?token=qu3ry-abc"
    line = error_line([f"resume='{url}'"], capsys)
    assert "t0ken-abc" not in line and "qu3ry-abc" not in line and "resume=" in line, line
    line = error_line(
        ["experiment=demo", "dataset=custom", "dataset.data_root=${oc.env:SEGLAB_TEST_DATA}"],
        capsys,
    )
    assert ENV_DATA not in line and "masked-" in line, line


def test_what_interpolates_a_secret_is_masked_in_the_run_directory(capsys):
    """The directory is named and Hydra's record written before the error stops the run: a
    single run's refusal leaves none, a sweep keeps its failed job's."""
    args = [
        "optim_wrapper.optimizer.lr=${oc.env:SEGLAB_TEST_LR}",
        "+db.password=${oc.env:SEGLAB_TEST_DB}",
        "+db.dsn=postgres://u:${db.password}@h/db",
    ]
    line = error_line(args, capsys)
    assert ENV_LR not in line
    assert list(Path("outputs/runs").iterdir()) == []
    code, summary = sweep(args)
    assert code == 1 and summary["failed"] == 1
    sweep_dir = Path(summary["jobs"][0]["run_dir"]).parent
    # a database URL keeps its user (a role name) and masks the password it interpolates
    assert "dsn=postgres___u_masked-" in sweep_dir.name and ENV_DB not in sweep_dir.name
    for path in files(sweep_dir):  # .hydra/hydra.yaml holds the directory's name
        assert not holding(path, [ENV_DB, ENV_LR]), path


def test_the_header_and_wandb_get_masked_overrides_and_config():
    """What the config.py header and wandb receive: a Hydra job's overrides and its config."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from seglab.config.compose import compose
    from seglab.config.convert import to_container
    from seglab.masking import mask_env_values, task_overrides
    from seglab.run.wandb_logging import without_secrets

    cfg = compose(["experiment=demo", *SECRETS[4:], "+db.user=${oc.env:SEGLAB_TEST_DATA}"])
    HydraConfig.instance().set_config(cfg)
    shown = " ".join(task_overrides())
    assert "+db.dsn=masked-" in shown and not [v for v in VALUES if v in shown], shown
    config = without_secrets(mask_env_values(to_container(cfg), OmegaConf.to_container(cfg)))
    assert "password" not in config["db"] and config["db"]["dsn"].startswith("masked-")
    assert config["db"]["user"].startswith("masked-")
    assert not [v for v in VALUES if v in json.dumps(config)]


def test_keys_no_mmseg_class_reads_stay_out_of_the_export():
    from seglab.config.convert import config_text, export_config

    mm_cfg = export_config(
        [
            "experiment=demo",
            *SECRETS[2:],
            "+find_unused_parameters=true",  # mmengine's Runner reads it
        ]
    )
    assert "custom" not in mm_cfg and "db" not in mm_cfg and "wandb" not in mm_cfg
    assert mm_cfg.find_unused_parameters is True and "model" in mm_cfg
    assert not [v for v in VALUES if v in config_text(mm_cfg)]


def test_a_failed_sweep_job_keeps_its_secrets_out_of_summary_traceback_and_report(capsys):
    """Jobs that fail before training: their errors name a value read from the environment."""
    code, summary = sweep(
        ["experiment=demo", "optim_wrapper.optimizer.lr=${oc.env:SEGLAB_TEST_LR}", "+x=1,2"]
    )
    assert code == 1 and summary["failed"] == 2
    (sweep_dir,) = Path("outputs/sweeps").iterdir()
    for job in summary["jobs"]:
        assert "optim_wrapper.optimizer.lr=" in job["error"] and "masked-" in job["error"]
        assert not holding(Path(job["traceback"]), [ENV_LR]), job["traceback"]
    assert not holding(sweep_dir / "summary.json", [ENV_LR])
    printed = capsys.readouterr()
    assert ENV_LR not in printed.out + printed.err
    table = report(str(sweep_dir))
    assert "masked-" in table and ENV_LR not in table
    assert not holding(sweep_dir / "report.md", [ENV_LR])
    # a traceback written in the clear (by an older seglab) is masked as the report reads it
    (sweep_dir / "summary.json").unlink()
    trace = Path(summary["jobs"][0]["traceback"])
    trace.write_text(f"Traceback ...\nConfigError: lr={ENV_LR!r}: expected a number\n")
    overrides = yaml.safe_load((trace.parent / ".hydra" / "overrides.yaml").read_text())
    assert any("SEGLAB_TEST_LR" in o for o in overrides), "how the report knows the secret"
    table = report(str(sweep_dir))
    assert ENV_LR not in table and TRACEBACK_FILE in table


# --- Hydra's record, a missing variable, mmengine's log, one line per secret ----------------

CREDENTIALS = {  # a literal value under each kind of credential-named key
    "+x.passwd": "hunter2secret",
    "+x.pwd": "pwd-s3cr3t-111",
    "+x.credentials": "cred-s3cr3t-222",
    "+x.auth_token": "auth-s3cr3t-333",
}
URL = "http://bob:URLPASSW0RD@127.0.0.1:9/q9.pth?token=URLTOKEN77&sig=SIGSIG99"
URL_SECRETS = ("URLPASSW0RD", "URLTOKEN77", "SIGSIG99")
RECORDED = (*CREDENTIALS.values(), *URL_SECRETS, ENV_DB)


@pytest.mark.train
def test_hydras_record_of_a_run_masks_every_secret(capsys):
    """Hydra writes `.hydra/` before the run starts. The weights URL stops the run in one line
    that names none of the secrets, and leaves no directory; with the weights off the run
    trains, and its record holds them masked."""
    args = [
        "experiment=demo",
        *(f"{k}={v}" for k, v in CREDENTIALS.items()),
        f"model.pretrained='{URL}'",
        "+db.password=${oc.env:SEGLAB_TEST_DB}",
    ]
    line = error_line(args, capsys)
    assert not [v for v in RECORDED if v in line], line
    assert list(Path("outputs/runs").iterdir()) == [], "a refused command leaves no directory"
    run_dir = train([*args, *SMALL_SYNTHETIC, "train_cfg.max_iters=1", "pretrained=false"])
    record = run_dir / ".hydra"
    assert {p.name for p in record.iterdir()} >= {"overrides.yaml", "hydra.yaml", "config.yaml"}
    for path in files(run_dir):
        assert not holding(path, RECORDED), path
    overrides = yaml.safe_load((record / "overrides.yaml").read_text())
    assert "+db.password=${oc.env:SEGLAB_TEST_DB}" in overrides, "a variable's name stays"
    assert "+x.passwd=masked-" in " ".join(overrides) and "experiment=demo" in overrides
    hydra = yaml.safe_load((record / "hydra.yaml").read_text())["hydra"]
    assert hydra["overrides"]["task"] == overrides
    assert "x.passwd=masked-" in hydra["job"]["override_dirname"]
    config = yaml.safe_load((record / "config.yaml").read_text())
    assert all(v.startswith("masked-") for v in config["x"].values()), config["x"]
    assert config["model"]["pretrained"].startswith("http://masked-")
    assert config["db"]["password"] == "${oc.env:SEGLAB_TEST_DB}"


def test_hydras_record_of_a_sweep_masks_every_secret(capsys):
    """The sweep's multirun.yaml and each job's `.hydra/` (the jobs fail on the weights URL)."""
    swept = "pwd-s3cr3t-a-444,pwd-s3cr3t-b-555"
    code, summary = sweep(
        [
            "experiment=demo",
            f"+x.passwd={CREDENTIALS['+x.passwd']}",
            f"+x.pwd={swept}",
            f"model.pretrained='{URL}'",
        ]
    )
    assert code == 1 and summary["failed"] == 2
    (sweep_dir,) = Path("outputs/sweeps").iterdir()
    secrets = (CREDENTIALS["+x.passwd"], *swept.split(","), *URL_SECRETS)
    assert (sweep_dir / "multirun.yaml").is_file()
    for path in files(sweep_dir):
        assert not holding(path, secrets), path
    for job in summary["jobs"]:
        assert (Path(job["run_dir"]) / ".hydra" / "config.yaml").is_file()
    printed = capsys.readouterr()
    assert not [v for v in secrets if v in printed.out + printed.err]


def test_a_missing_environment_variable_is_one_line(capsys):
    for first, last in (([], []), (["-m"], ["+y=1,2"])):
        args = [*first, "experiment=demo", "+db.password=${oc.env:NOPE_VAR_X}", *last]
        line = error_line(args, capsys)
        assert "db.password" in line and "NOPE_VAR_X" in line and "export" in line, line


def test_the_runners_log_masks_known_secrets(monkeypatch, tmp_path, capsys):
    """mmengine logs the URL it loads weights from, resolved: console and log file mask it."""
    import sys

    from mmengine.logging import MMLogger

    from seglab.run.console import escape_logger_output

    monkeypatch.setenv("SEGLAB_TEST_TOK", "tok-s3cr3t-4242")
    override = "model.pretrained=http://127.0.0.1:9/${oc.env:SEGLAB_TEST_TOK}/x.pth"
    monkeypatch.setattr(sys, "argv", ["seglab", override])
    log_file = tmp_path / "run.log"
    logger = MMLogger.get_instance("seglab-test-masking", log_file=str(log_file))
    escape_logger_output(logger)
    try:
        logger.info(
            "Loads checkpoint by url backend from path: http://127.0.0.1:9/tok-s3cr3t-4242/x.pth"
        )
        logger.info("a \x1b[31mred\x1b[0m file name")
    finally:
        for handler in logger.handlers:
            handler.flush()
    written = log_file.read_text() + capsys.readouterr().out
    assert "tok-s3cr3t-4242" not in written and "path: masked-" in written, written
    assert "\x1b" not in written and "\\x1b[31mred" in written, "control characters escaped"


def test_the_download_refusal_names_each_secret_once_and_balanced():
    import re

    from mmengine.config import Config

    from seglab.checks.before_training import check_weights_reachable
    from seglab.errors import ConfigError
    from seglab.masking import mask_text

    with pytest.raises(ConfigError) as refused:
        check_weights_reachable(Config({"model": {"pretrained": URL}}), network_timeout=2.0)
    line = mask_text(str(refused.value))
    assert not [v for v in URL_SECRETS if v in line], line
    assert line.count("(") == line.count(")"), line
    assert "(model.pretrained=/path/to/q9.pth)" in line, line
    # in running text a query value ends at `)`, whitespace or a quote: one secret, one mask
    text = mask_text("a (x?sig=SIGSIG99) b 'y?sig=SIGSIG99' \"z?sig=SIGSIG99\" w?sig=SIGSIG99 c")
    assert len(set(re.findall(r"masked-[0-9a-f]{16}", text))) == 1, text
    assert text.startswith("a (x?sig=masked-") and ") b 'y?sig=" in text and text.endswith(" c")


def test_in_process_commands_mask_their_own_secrets(monkeypatch, capsys):
    """`cli.main(args)` is a command whose overrides are not in sys.argv."""
    import sys

    monkeypatch.setattr(sys, "argv", ["pytest"])
    line = error_line(["optim_wrapper.optimizer.passwd=cli-only-s3cr3t-5150"], capsys)
    assert "cli-only-s3cr3t-5150" not in line and "passwd=masked-" in line, line
