"""The `seglab` command itself: help for every command, and the mistakes that are caught
before a run directory or a model is touched."""

from __future__ import annotations

import os
import shlex

import pytest

from seglab.cli import COMMANDS, main
from seglab.config.compose import group_options
from tests.helpers.commands import error_line


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("command", sorted(set(COMMANDS) - {"train"}))
def test_every_command_prints_its_usage_and_exits_zero(command, flag, capsys):
    main([command, flag])  # returns: exit code 0, no run, no report, no check
    out, err = capsys.readouterr()
    assert out.startswith(f"usage: seglab {command}"), out[:300]
    assert err == ""


def test_seglab_help_shows_its_usage_and_the_groups_not_hydras_config(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: seglab [train]")
    assert "seglab train --help" in out  # where Hydra's own help still is
    lines = out.splitlines()
    assert len(lines) < 40 and "== Config ==" not in out
    model = next(line.split() for line in lines if line.strip().startswith("model "))
    assert model[1] == str(len(group_options("model")))
    assert any(line.strip().startswith("hydra/launcher") and "gpu_pool" in line for line in lines)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run_dir=missing", "tta=maybe"], "tta=maybe: expected true or false"),
        (
            ["run_dri=outputs/runs/x"],
            "run_dri=outputs/runs/x: no option run_dri; did you mean run_dir?",
        ),
        (["run_dir=missing", "test_dataloader.batch_size=[4,"], "test_dataloader.batch_size=[4,: "),
    ],
)
def test_test_options_are_checked_before_the_run_is_read(args, expected, capsys):
    assert error_line(["test", *args], capsys).startswith(f"seglab: error: {expected}")


def test_help_with_a_command_is_that_commands_usage(capsys):
    main(["help", "infer"])
    out = capsys.readouterr().out
    assert out.startswith("usage: seglab infer") and "_labels.png" in out


@pytest.mark.parametrize(
    "typed, meant",
    [
        (["lst", "segformer"], "seglab list segformer"),
        (["ls", "segformer"], "seglab list segformer"),
        (["predict", "checkpoint=x.pth", "image=y", "out=z"], "seglab infer checkpoint=x.pth"),
        (["evaluate", "run_dir=r"], "seglab test run_dir=r"),
    ],
)
def test_a_mistyped_command_names_the_command_meant(typed, meant, capsys):
    line = error_line(typed, capsys)
    assert f"no command {typed[0]!r}; did you mean `{meant}" in line


def test_the_suggested_command_runs(capsys):
    """What `seglab lst segformer` suggests, run as it is written."""
    line = error_line(["lst", "segformer"], capsys)
    suggested = line.split("did you mean `seglab ", 1)[1].split("`", 1)[0].split()
    main(suggested)
    assert "segformer" in capsys.readouterr().out


def test_a_word_that_is_no_command_says_what_is_expected(capsys):
    line = error_line(["segformer"], capsys)
    assert "no command 'segformer'; expected one of train, export" in line
    assert "KEY=VALUE overrides" in line


@pytest.mark.processes
def test_a_listing_cut_short_by_its_reader_ends_quietly():
    """`seglab list | head -1`: the pipe closes after a line; no BrokenPipeError traceback."""
    import subprocess
    import sys

    from tests.helpers.commands import REPO

    shell = f"{shlex.quote(sys.executable)} -m seglab list | head -1"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", shell],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
