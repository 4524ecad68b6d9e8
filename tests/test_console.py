"""What a person sees on the terminal: the loss of a short run, not mmengine's dumps; Ctrl-C,
a finished run's resume and `seglab env` end in one line."""

from __future__ import annotations

import re
import shlex
import signal
from pathlib import Path

import pytest

from seglab.cli import main
from tests.helpers.commands import SMALL_SYNTHETIC, TRAINED_RUN, run_seglab, seglab_process
from tests.helpers.signals import seglab_in_own_group

ITERATION = re.compile(r"Iter\(train\) \[\s*(\d+)/")
# what mmengine and mmseg print on every run, which the run's log keeps
DUMPS = ("System environment:", "Config:", "Hooks will be executed in the following order")
DEPRECATIONS = ("``build_loss`` would be deprecated", "avg_non_ignore", '"FileClient" will be')


@pytest.mark.train
@pytest.mark.processes
def test_a_short_run_prints_its_loss_and_leaves_the_dumps_to_its_log():
    """The demo schedule logs every 100 iterations; a 10-iteration try still shows its loss."""
    args = [
        "experiment=demo",
        *SMALL_SYNTHETIC,
        "train_cfg.max_iters=10",
        "train_cfg.val_interval=10",
        "default_hooks.checkpoint.interval=10",
    ]
    done = run_seglab(args)
    assert done.returncode == 0, done.stderr[-3000:]
    terminal = done.stdout + done.stderr
    printed = [int(n) for n in ITERATION.findall(terminal)]
    assert len(printed) >= 5 and "loss:" in terminal, printed
    for text in (*DUMPS, *DEPRECATIONS):
        assert text not in terminal, text
    (run_dir,) = Path("outputs/runs").iterdir()
    (log,) = run_dir.glob("*/*.log")
    kept = log.read_text()
    for text in (*DUMPS, *DEPRECATIONS):
        assert text in kept, text
    assert [int(n) for n in ITERATION.findall(kept)] == printed
    # the exported config logs as the run did, and says why it differs from the schedule
    config = (run_dir / "config.py").read_text()
    assert "seglab set default_hooks.logger.interval=2" in config
    assert re.search(r"logger=dict\(.*?interval=2,", config, re.S)


@pytest.mark.train
@pytest.mark.processes
def test_ctrl_c_saves_where_it_stopped_and_prints_the_command_that_resumes():
    """No checkpoint is due for 1000 iterations: Ctrl-C saves the iteration in flight."""
    args = [
        "experiment=demo",
        *SMALL_SYNTHETIC,
        "train_cfg.max_iters=1000",
        "train_cfg.val_interval=1000",
        "default_hooks.checkpoint.interval=1000",
        "default_hooks.logger.interval=1",
    ]
    process = seglab_process(args)
    try:
        for line in process.stdout:
            match = ITERATION.search(line)
            if match and int(match.group(1)) >= 3:
                break
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err[-3000:]
    (run_dir,) = Path("outputs/runs").iterdir()
    checkpoint = Path((run_dir / "last_checkpoint").read_text().strip()).name
    iteration = int(checkpoint.removeprefix("iter_").removesuffix(".pth"))
    assert iteration >= 3
    command = f"python -m seglab {shlex.join(args)} resume=true"
    assert [line for line in err.splitlines() if line.strip()] == [
        "seglab: Ctrl-C: saving a checkpoint at the end of this iteration "
        "(Ctrl-C again stops at once)",
        f"seglab: Ctrl-C: saved {checkpoint} at iteration {iteration} and stopped during "
        f"training; {command} continues {run_dir.resolve()} from {checkpoint}",
    ]


@pytest.mark.train
@pytest.mark.processes
def test_a_second_ctrl_c_stops_at_once():
    """Two Ctrl-C in one iteration (SIGINT sent by a hook, so the timing is exact): the run
    stops without saving, and says where it can go on from."""
    args = [
        "experiment=demo",
        *SMALL_SYNTHETIC,
        "train_cfg.max_iters=1000",
        "default_hooks.checkpoint.interval=2",
        "+custom_hooks=[{type:CtrlCHook,at:4,times:2}]",
    ]
    result = seglab_in_own_group(args)
    assert result.returncode == 130, result.stderr[-3000:]
    (run_dir,) = Path("outputs/runs").iterdir()
    assert sorted(p.name for p in run_dir.glob("*.pth")) == ["iter_2.pth"]  # nothing saved
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("seglab: interrupted; ") and last.endswith("from iter_2.pth")
    assert "Traceback" not in result.stderr


@pytest.mark.train
def test_resume_on_a_finished_run_says_so_and_trains_nothing(trained_run_copy, capsys):
    logs = sorted(trained_run_copy.glob("*/*.log"))
    capsys.readouterr()
    main([*TRAINED_RUN, "resume=true"])
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"seglab: {trained_run_copy.resolve()} finished all 20 iterations")
    assert "(iter_20.pth, mIoU=" in line and "train_cfg.max_iters=N" in line
    assert sorted(trained_run_copy.glob("*/*.log")) == logs, "no run started"


def test_env_ends_with_one_line_that_says_all_is_well(capsys):
    main(["env"])
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("seglab env: all is well; runs train on ")
