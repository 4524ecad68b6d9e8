"""bench/throughput.py: its modes are seglab's switches, and on the CPU it trains the demo model
in each mode and prints a table of measured, finite numbers (or why a mode was refused)."""

from __future__ import annotations

import argparse
import importlib.util
import math
import re
import sys
from pathlib import Path

import pytest

from seglab.config.compose import compose

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "throughput.py"
_spec = importlib.util.spec_from_file_location("bench_throughput", SCRIPT)
throughput = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = throughput  # its dataclass looks its module up there
_spec.loader.exec_module(throughput)


def test_modes_are_seglab_switches():
    """Every switch a mode names is a key seglab composes (the bench and the switches agree)."""
    assert throughput.mode_overrides("fp32") == []
    overrides = throughput.mode_overrides("bf16+cl+compile")
    assert overrides == ["precision=bf16", "channels_last=true", "compile=true"]
    cfg = compose(["experiment=demo", *overrides])
    assert (cfg.precision, cfg.channels_last, cfg.compile) == ("bf16", True, True)
    for bad in ("fp8", "fp32+bf16", "cl+cl"):
        with pytest.raises(argparse.ArgumentTypeError):
            throughput.parse_modes(bad)


def _number(cell: str, unit: str = "") -> float:
    value = float(cell.removesuffix(unit).strip())
    assert math.isfinite(value) and value > 0, cell
    return value


@pytest.mark.train
@pytest.mark.processes
def test_throughput_table_on_the_cpu(capsys):
    """2 iterations of the demo model per mode (the second measured): fp32 and channels-last
    train, bf16 (mixed precision needs a GPU) is a refused row, not a crash."""
    code = throughput.main(
        ["demo", "--iters=2", "--warmup=1", "--batch=2", "--modes=fp32,fp32+cl,bf16"]
        + ["--peak-flops=1e12", "--out=bench-out"]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    lines = [line for line in printed.splitlines() if line.startswith("|")]
    header, rows = lines[0], {line.split("|")[1].strip(): line for line in lines[2:]}
    assert [c.strip() for c in header.strip("|").split("|")] == throughput.COLUMNS
    assert set(rows) == {"fp32", "fp32+cl", "bf16"}
    for mode in ("fp32", "fp32+cl"):
        _, images, s_iter, data, memory, mfu, speedup = (
            c.strip() for c in rows[mode].strip("|").split("|")
        )
        assert _number(images) == pytest.approx(2 / _number(s_iter), rel=0.02)  # as printed
        assert 0 <= float(data.removesuffix("%")) <= 100
        _number(memory, "MiB")
        _number(mfu, "%")  # the FLOPs of the demo model at 64x64, over the given peak
        _number(speedup, "x")
    assert rows["fp32"].split("|")[7].strip() == "1.00x"
    refused = rows["bf16"].split("|")[2].strip()
    assert re.match(r"refused: precision=bf16: .*GPU", refused), refused
    assert "demo on synthetic 64x64 crops, batch 2" in printed
    assert "peak RSS of the training process" in printed
    assert Path("bench-out/throughput.md").read_text().strip() == printed.strip()
