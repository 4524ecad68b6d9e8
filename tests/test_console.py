"""What a person sees on the terminal: the loss of a short run, not mmengine's dumps; Ctrl-C,
a finished run's resume and `seglab env` end in one line."""

from __future__ import annotations

import os
import re
import shlex
import signal
from pathlib import Path

import pytest

from seglab.cli import main
from seglab.config.compose import CONF_DIR
from tests.helpers.commands import SMALL_SYNTHETIC, TRAINED_RUN, run_seglab, seglab_process
from tests.helpers.signals import seglab_in_own_group

EXPERIMENTS = CONF_DIR / "experiment"
ITERATION = re.compile(r"Iter\(train\) \[\s*(\d+)/")
# what mmengine and mmseg print on every run, which the run's log keeps
DUMPS = (
    "System environment:",
    "Config:",
    "Hooks will be executed in the following order",
    "Exp name: ",  # at each data-loader epoch's end: 16 images in batches of 4
)
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
def test_a_model_with_paramwise_options_on_one_cpu_prints_no_line_it_need_not_act_on():
    """SegFormer's `paramwise_cfg.custom_keys` logged a line per matched parameter (207) before
    the first iteration, and loaders asking for more workers than the machine's CPUs got torch's
    warning twice. On one CPU (the process's affinity), the data set's 2 workers are fitted to
    1 and said once; the parameter lines go to the run's log only."""
    small = [o for o in SMALL_SYNTHETIC if "workers" not in o]  # the data set's own: 2
    args = [
        "experiment=demo",
        *small,
        "train_cfg.max_iters=2",
        "train_cfg.val_interval=2",
        "+optim_wrapper.paramwise_cfg={custom_keys:{decode_head:{lr_mult:10.0}}}",
    ]
    done = run_seglab(args, cpus={0})
    assert done.returncode == 0, done.stderr[-3000:]
    terminal = done.stdout + done.stderr
    assert "paramwise_options" not in terminal and "worker processes in total" not in terminal
    fitted = " ".join(f"{s}_dataloader.num_workers=1" for s in ("train", "val", "test"))
    assert terminal.count("seglab: more loader workers than CPUs: set " + fitted) == 1, terminal
    (run_dir,) = Path("outputs/runs").iterdir()
    (log,) = run_dir.glob("*/*.log")
    assert log.read_text().count("paramwise_options -- decode_head.") >= 2
    config = (run_dir / "config.py").read_text()
    assert f"seglab set {fitted} (was 2, 2, 2; this machine gives the run 1 CPUs)" in config
    assert config.count("    num_workers=1,") == 3 and "num_workers=2" not in config


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
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err[-3000:]
    # the log's line says what the terminal's does: the same command alone starts a new run
    assert "resume=true" in out and "the same command continues it" not in out
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


@pytest.mark.processes
def test_test_infer_and_import_print_no_library_notes(
    trained_run_copy, tmp_path, repository_configs
):
    """Deprecation warnings with site-packages paths, `Failed to search registry with scope`
    and `Failed to add ... LocalVisBackend` read like errors; none is the user's to act on.
    `seglab test` keeps them in its Runner's log."""
    images = sorted(Path(os.environ["SEGLAB_CACHE"]).glob("synthetic_shapes/*/images/validation"))
    mine = tmp_path / "my_fcn.py"  # a user's config (an upstream one's path names site-packages)
    mine.write_text(
        "_base_ = ['mmseg::fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py']\n"
        "optim_wrapper = dict(optimizer=dict(lr=0.02))\n"
    )
    name = f"quiet-{tmp_path.name}"
    commands = [
        ["test", f"run_dir={trained_run_copy}"],
        ["infer", f"checkpoint={trained_run_copy}", f"image={images[0]}", "out=segmented"],
        ["import", str(mine), f"out={EXPERIMENTS / name}.yaml"],
    ]
    try:
        for args in commands:
            done = run_seglab(args)
            assert done.returncode == 0, done.stderr[-3000:]
            terminal = done.stdout + done.stderr
            for noise in ("site-packages", "Warning", "Failed to", "SyncBatchNorm"):
                assert noise not in terminal, (args[0], terminal[-3000:])
    finally:
        (EXPERIMENTS / f"{name}.yaml").unlink(missing_ok=True)
    (log,) = trained_run_copy.glob("test/*/*.log")
    assert "``build_loss`` would be deprecated" in log.read_text()
