"""The resolvers the YAML uses, and run directories that are a function of the overrides."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seglab.config.resolvers import as_tuple, length, run_dir
from seglab.errors import ConfigError
from seglab.run_dirs.files import LOCK_FILE
from seglab.run_dirs.lock import choose_run_dir, release, release_all
from seglab.run_dirs.names import run_name


def test_as_tuple_from_items_and_from_a_list():
    assert as_tuple(512, 512) == (512, 512)
    assert as_tuple([640, 480]) == (640, 480)
    assert length(["a", "b", "c"]) == 3


@given(st.text(max_size=300))
def test_run_name_is_a_safe_deterministic_file_name(overrides):
    name = run_name(overrides)
    assert name == run_name(overrides)
    assert "/" not in name and "\0" not in name and 0 < len(name) <= 96
    assert name not in (".", "..")


@given(st.lists(st.text(min_size=1, max_size=120), min_size=2, max_size=2, unique=True))
def test_different_overrides_never_share_a_directory(pair):
    assert run_name(pair[0]) != run_name(pair[1])


def test_run_dir_takes_the_next_free_name_and_resume_reuses_the_newest(tmp_path):
    root = str(tmp_path)
    first = run_dir(root, "model=x", False)
    assert first == os.path.join(root, "model=x") and os.path.isdir(first), "claimed as chosen"
    assert run_dir(root, "model=x", False) == first, "read again by its process: the same"
    release(first)  # the run ended
    os.makedirs(os.path.join(first, ".hydra"))
    assert run_dir(root, "model=x", False) == first, "one a config error stopped is taken again"
    release(first)
    open(os.path.join(first, "log"), "w").close()
    second = run_dir(root, "model=x", False)
    assert second == first + "-2"
    open(os.path.join(second, "log"), "w").close()
    release(second)
    assert run_dir(root, "model=x", True) == second
    release(second)
    assert run_dir(root, "model=x", False) == first + "-3"
    release_all()


HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(120)
"""


@pytest.mark.processes
def test_a_directory_another_process_holds_is_never_shared(tmp_path):
    """Two identical commands: the second takes `-2`, even before the first wrote a file;
    `resume=true` while that run lives is refused; a dead process holds nothing."""
    root = str(tmp_path)
    held = os.path.join(root, "model=x")
    os.makedirs(held)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, os.path.join(held, LOCK_FILE)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert run_dir(root, "model=x", False) == held + "-2"
        open(os.path.join(held, "log"), "w").close()
        release_all()
        with pytest.raises(ConfigError, match="being trained by another process"):
            choose_run_dir(root, "model=x", True)
    finally:
        holder.kill()
        holder.wait()
        release_all()
    assert run_dir(root, "model=x", True) == held
    release_all()


def test_cfg_job_resolve_prints_the_resolved_config(capsys):
    """Hydra's `--cfg job --resolve` resolves the config in place, where a node holds no tuple;
    the config converted for mmengine keeps its tuples."""
    import yaml

    from seglab.cli import main
    from seglab.config.convert import export_config
    from seglab.config.resolvers import tuples_as_lists

    main(["--cfg", "job", "--resolve", "experiment=demo", "dataset.crop_size=[48,48]"])
    printed = yaml.safe_load(capsys.readouterr().out)
    crop = next(t for t in printed["train_pipeline"] if t["type"] == "RandomCrop")
    assert crop["crop_size"] == [48, 48]
    with tuples_as_lists():
        assert list(as_tuple(1, 2)) == [1, 2] and not isinstance(as_tuple(1, 2), tuple)
    mm_cfg = export_config(["experiment=demo", "dataset.crop_size=[48,48]"])
    assert next(t for t in mm_cfg.train_pipeline if t["type"] == "RandomCrop")["crop_size"] == (
        48,
        48,
    )
