"""Every command in docs/config.md runs as written (on the synthetic data)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from seglab.cli import main
from tests.helpers.data import ade20k_folder

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "config.md"
COMMANDS = [
    line
    for block in re.findall(r"```bash\n(.*?)```", GUIDE.read_text(), re.S)
    for line in block.splitlines()
    if line.strip()
]


def test_the_guide_has_commands():
    assert len(COMMANDS) >= 6


def trains(command: str) -> bool:
    return "--cfg" not in command and " export " not in command


@pytest.mark.parametrize(
    "command", [pytest.param(c, marks=pytest.mark.train) if trains(c) else c for c in COMMANDS]
)
def test_guide_command_runs_as_written(command, capsys):
    ade20k_folder(Path("data/roads"), n=4, size=64)  # the two-class folder it names
    args = shlex.split(command)
    assert args[:3] == ["python", "-m", "seglab"] or args[0] == "seglab"
    main(args[3:] if args[0] == "python" else args[1:])
    if "--cfg" in args:
        assert "model:" in capsys.readouterr().out
    if "out=demo_config.py" in args:
        assert Path("demo_config.py").is_file()
