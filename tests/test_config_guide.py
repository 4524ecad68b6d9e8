"""Every command in docs/config.md runs as written (on the synthetic data)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.cli import main

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "config.md"
COMMANDS = [
    line
    for block in re.findall(r"```bash\n(.*?)```", GUIDE.read_text(), re.S)
    for line in block.splitlines()
    if line.strip()
]


def make_roads(root: Path) -> None:
    """The two-class folder the custom-data command points at."""
    for split in ("training", "validation"):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
        for i in range(4):
            label = np.zeros((64, 64), np.uint8)
            label[20 + i : 44, 10:54] = 1
            image = np.stack([label * 120 + 40] * 3, axis=-1).astype(np.uint8)
            Image.fromarray(image).save(root / "images" / split / f"{i}.jpg")
            Image.fromarray(label).save(root / "annotations" / split / f"{i}.png")


def test_the_guide_has_commands():
    assert len(COMMANDS) >= 6


@pytest.mark.parametrize("command", COMMANDS)
def test_guide_command_runs_as_written(command, capsys):
    make_roads(Path("data/roads"))
    args = shlex.split(command)
    assert args[:3] == ["python", "-m", "seglab"] or args[0] == "seglab"
    main(args[3:] if args[0] == "python" else args[1:])
    if "--cfg" in args:
        assert "model:" in capsys.readouterr().out
    if "out=demo_config.py" in args:
        assert Path("demo_config.py").is_file()
