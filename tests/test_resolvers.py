"""The resolvers the YAML uses, and run directories that are a function of the overrides."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from seglab.resolvers import as_tuple, length, run_dir, run_name


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
    assert first == os.path.join(root, "model=x")
    os.makedirs(first)
    assert run_dir(root, "model=x", False) == first, "an empty directory is reused"
    os.makedirs(os.path.join(first, ".hydra"))
    assert run_dir(root, "model=x", False) == first, "so is one a config error stopped"
    open(os.path.join(first, "log"), "w").close()
    second = run_dir(root, "model=x", False)
    assert second == first + "-2"
    os.makedirs(second)
    open(os.path.join(second, "log"), "w").close()
    assert run_dir(root, "model=x", True) == second
    assert run_dir(root, "model=x", False) == first + "-3"
