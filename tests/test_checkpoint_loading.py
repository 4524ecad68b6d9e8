"""Checkpoints load with torch >= 2.6 without running what a file asks to run."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from seglab import checkpoint_loading
from tests.helpers.commands import TRAINED_RUN, error_line


@pytest.fixture(autouse=True)
def seglab_loaders():
    """mmengine's checkpoint schemes load through seglab's functions (as before any Runner)."""
    checkpoint_loading.register()


class RunsACommand:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickled_command_is_refused(tmp_path):
    marker = tmp_path / "it-ran"
    torch.save({"state_dict": {}, "meta": RunsACommand(str(marker))}, tmp_path / "evil.pth")
    with pytest.raises(pickle.UnpicklingError):
        CheckpointLoader.load_checkpoint(str(tmp_path / "evil.pth"))
    assert not marker.exists()


def test_mmengine_message_hub_state_loads(tmp_path):
    buffer = HistoryBuffer()
    buffer.update(0.5)
    torch.save(
        {"state_dict": {"w": torch.ones(2)}, "message_hub": {"loss": buffer}}, tmp_path / "ok.pth"
    )
    loaded = CheckpointLoader.load_checkpoint(str(tmp_path / "ok.pth"))
    assert loaded["message_hub"]["loss"].current() == 0.5
    assert torch.equal(loaded["state_dict"]["w"], torch.ones(2))


# A pickle made only of names the loader allows that still reaches `eval`: `getattr` is the
# builtins module's attribute reader (getattr.__self__ is the module), and torch's own
# `_rebuild_from_type_v2` calls whatever it is handed.
class _BuiltinsModule:
    def __reduce__(self):
        return getattr, (getattr, "__self__")


class _Eval:
    def __reduce__(self):
        return getattr, (_BuiltinsModule(), "eval")


class _TensorThatRunsCode:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return torch._tensor._rebuild_from_type_v2, (_Eval(), torch.Tensor, (self.code,), {})


def allowlisted_hostile_checkpoint(path, marker) -> None:
    code = f"(__import__('pathlib').Path({str(marker)!r}).touch(), __import__('torch').zeros(1))[1]"
    torch.save({"state_dict": {"w": _TensorThatRunsCode(code)}, "meta": {}}, path)


def test_a_pickle_built_from_allowed_names_runs_nothing(tmp_path):
    marker = tmp_path / "it-ran"
    allowlisted_hostile_checkpoint(tmp_path / "evil.pth", marker)
    with pytest.raises(pickle.UnpicklingError, match="getattr"):
        CheckpointLoader.load_checkpoint(str(tmp_path / "evil.pth"))
    assert not marker.exists()


def test_getattr_names_only_history_buffer_statistics():
    assert checkpoint_loading.history_buffer_statistic(HistoryBuffer, "mean") is HistoryBuffer.mean
    for owner, name in [(HistoryBuffer, "__init__"), (getattr, "__self__"), (os, "system")]:
        with pytest.raises(pickle.UnpicklingError):
            checkpoint_loading.history_buffer_statistic(owner, name)


def test_statistics_methods_survive_the_round_trip(tmp_path):
    """mmengine's message hub as a Runner saves it: buffers whose statistics are pickled by name."""
    from mmengine.logging import MessageHub

    hub = MessageHub.get_instance("checkpoint-round-trip")
    hub.update_scalar("train/loss", 0.25)
    torch.save({"message_hub": hub.state_dict(), "meta": {"iter": 1}}, tmp_path / "hub.pth")
    loaded = CheckpointLoader.load_checkpoint(str(tmp_path / "hub.pth"))
    assert loaded["message_hub"]["log_scalars"]["train/loss"].mean() == 0.25


@pytest.mark.train
def test_resume_never_runs_the_config_text_a_checkpoint_carries(trained_run_copy, tmp_path):
    """mmengine's resume parses `meta['config']` as a Python config file, i.e. runs it."""
    from seglab.cli import main

    args, run_dir = TRAINED_RUN, trained_run_copy
    marker = tmp_path / "it-ran"
    (run_dir / "iter_20.pth").unlink()  # stopped before its end: resume=true has work to do
    (run_dir / "last_checkpoint").write_text(str(run_dir.resolve() / "iter_10.pth"))
    checkpoint = torch.load(run_dir / "iter_10.pth", map_location="cpu", weights_only=False)
    checkpoint["meta"]["config"] = f"__import__('pathlib').Path({str(marker)!r}).touch()\nx = 1\n"
    torch.save(checkpoint, run_dir / "iter_10.pth")
    main([*args, "resume=true"])
    assert not marker.exists()
    assert (
        "ignored the config text stored in the checkpoint"
        in sorted(run_dir.glob("*/*.log"))[-1].read_text()
    )


@pytest.mark.train
def test_a_refused_checkpoint_is_one_line(small_synthetic, tmp_path, capsys):
    from seglab.cli import main

    marker = tmp_path / "it-ran"
    allowlisted_hostile_checkpoint(tmp_path / "evil.pth", marker)
    with pytest.raises(SystemExit) as exit_:
        main([*small_synthetic, "train_cfg.max_iters=2", f"load_from={tmp_path / 'evil.pth'}"])
    assert exit_.value.code == 2 and not marker.exists()
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"seglab: error: {tmp_path / 'evil.pth'}: refused to load")


def test_infer_refuses_a_hostile_checkpoint_in_one_line(tmp_path, capsys):
    """`seglab infer` loads its checkpoint through mmseg's inferencer: still weights only."""
    import numpy as np
    from PIL import Image

    from seglab.cli import main

    marker = tmp_path / "it-ran"
    allowlisted_hostile_checkpoint(tmp_path / "evil.pth", marker)
    main(["export", "experiment=demo", f"out={tmp_path / 'config.py'}"])
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "image.png")
    line = error_line(
        [
            "infer",
            f"checkpoint={tmp_path / 'evil.pth'}",
            f"image={tmp_path / 'image.png'}",
            f"out={tmp_path / 'out'}",
        ],
        capsys,
    )
    assert line.startswith(f"seglab: error: {tmp_path / 'evil.pth'}: refused to load")
    assert not marker.exists()


# ---- shapes mmengine never writes, and every other scheme ---------------------------------


class _RecordDtype:
    """Pickles as `numpy.dtype([(field, kind), ...])`: one allowed call, no state to build."""

    def __init__(self, fields: list) -> None:
        self.fields = fields

    def __reduce__(self):
        import numpy as np

        return np.dtype, (self.fields,)


class _StructuredScalar:
    """Pickles as numpy's `scalar(dtype, raw bytes)` (the bytes through `_codecs.encode`)."""

    def __init__(self, fields: list, raw: bytes) -> None:
        self.fields, self.raw = fields, raw

    def __reduce__(self):
        from numpy._core.multiarray import scalar

        return scalar, (_RecordDtype(self.fields), self.raw)


def structured_meta(code: str) -> _StructuredScalar:
    """A numpy structured scalar, built from allowed names only, that answers
    `'config' in meta` (a field's value) and `meta['config']` (a field's name) as mmengine's
    resume asks them: the Python text it would run."""
    import numpy as np

    fields = [("name", "U6"), ("config", f"U{len(code)}")]
    record = np.array([("config", code)], dtype=np.dtype(fields))[0]
    assert "config" in record and record["config"] == code  # what mmengine's resume asks
    return _StructuredScalar(fields, record.tobytes())


def test_a_structured_numpy_meta_is_refused(tmp_path):
    torch.save({"state_dict": {}, "meta": structured_meta("x = 1\n")}, tmp_path / "evil.pth")
    with pytest.raises(checkpoint_loading.UnsafeCheckpointError, match="'meta' is a void"):
        CheckpointLoader.load_checkpoint(str(tmp_path / "evil.pth"))


def test_numpy_strings_and_records_anywhere_are_refused(tmp_path):
    import numpy as np

    for value in (
        _StructuredScalar([("a", "U1")], np.array([("x",)], dtype=[("a", "U1")]).tobytes()),
        _StructuredScalar([("a", "f4")], np.zeros(1, dtype=[("a", "f4")]).tobytes()),
    ):
        torch.save({"state_dict": {}, "meta": {"x": [value]}}, tmp_path / "odd.pth")
        with pytest.raises(checkpoint_loading.UnsafeCheckpointError, match="numpy data"):
            CheckpointLoader.load_checkpoint(str(tmp_path / "odd.pth"))


def test_a_file_the_unpickler_chokes_on_is_one_line(tmp_path):
    """Not only UnpicklingError: a zip that is no torch file makes torch raise RuntimeError."""
    import zipfile

    with zipfile.ZipFile(tmp_path / "odd.pth", "w") as archive:
        archive.writestr("odd/other.txt", "not a checkpoint")
    with pytest.raises(checkpoint_loading.UnsafeCheckpointError, match="RuntimeError"):
        CheckpointLoader.load_checkpoint(str(tmp_path / "odd.pth"))


@pytest.mark.train
def test_resume_refuses_a_structured_meta_without_running_it(trained_run_copy, tmp_path, capsys):
    run_dir, marker = trained_run_copy, tmp_path / "it-ran"
    (run_dir / "iter_20.pth").unlink()  # stopped before its end: resume=true has work to do
    (run_dir / "last_checkpoint").write_text(str(run_dir.resolve() / "iter_10.pth"))
    checkpoint = torch.load(run_dir / "iter_10.pth", map_location="cpu", weights_only=False)
    checkpoint["meta"] = structured_meta(
        f"__import__('pathlib').Path({str(marker)!r}).touch()\nx = 1\n"
    )
    torch.save(checkpoint, run_dir / "iter_10.pth")
    line = error_line([*TRAINED_RUN, "resume=true"], capsys, trained=True)
    assert "iter_10.pth: refused to load: its 'meta' is a void" in line
    assert not marker.exists()


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """torch's hub cache (where downloaded weights are kept) in this test's directory."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_weights_named_by_scheme_load_from_the_hub_cache_as_data(torch_home, tmp_path):
    url = checkpoint_loading.weights_url("open-mmlab://resnet18_v1c")
    cached = checkpoint_loading.hub_cache_file(url)
    assert cached.parent == torch_home
    cached.parent.mkdir(parents=True)
    marker = tmp_path / "it-ran"
    torch.save({"state_dict": {}, "meta": RunsACommand(str(marker))}, cached)
    with pytest.raises(checkpoint_loading.UnsafeCheckpointError, match="refused to load"):
        CheckpointLoader.load_checkpoint("open-mmlab://resnet18_v1c")
    assert not marker.exists()
    torch.save({"state_dict": {"w": torch.ones(1)}}, cached)
    assert torch.equal(
        CheckpointLoader.load_checkpoint("open-mmlab://resnet18_v1c")["state_dict"]["w"],
        torch.ones(1),
    )


def test_mmcls_weights_come_from_the_cache_as_data_and_keep_the_backbone(torch_home):
    url = checkpoint_loading.weights_url("mmcls://resnet50")
    cached = checkpoint_loading.hub_cache_file(url)
    cached.parent.mkdir(parents=True)
    torch.save({"state_dict": {"backbone.w": torch.ones(1), "head.w": torch.ones(1)}}, cached)
    loaded = CheckpointLoader.load_checkpoint("mmcls://resnet50")
    assert list(loaded["state_dict"]) == ["w"]  # mmengine's own mmcls:// processing


@pytest.fixture
def weights_server(tmp_path):
    """A real HTTP server on localhost serving tmp_path/served/."""
    import functools
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # not on the test's stderr
            pass

    handler = functools.partial(Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def test_weights_by_url_are_downloaded_then_loaded_as_data(torch_home, weights_server, tmp_path):
    served, base = weights_server
    torch.save({"state_dict": {"w": torch.full((2,), 3.0)}}, served / "good-0123.pth")
    loaded = CheckpointLoader.load_checkpoint(f"{base}/good-0123.pth")
    assert torch.equal(loaded["state_dict"]["w"], torch.full((2,), 3.0))
    assert (torch_home / "good-0123.pth").is_file()  # kept in the cache, as mmengine does

    marker = tmp_path / "it-ran"
    torch.save({"meta": RunsACommand(str(marker))}, served / "evil-4567.pth")
    with pytest.raises(checkpoint_loading.UnsafeCheckpointError, match="refused to load"):
        CheckpointLoader.load_checkpoint(f"{base}/evil-4567.pth")
    assert not marker.exists()


@pytest.mark.train
def test_a_hostile_download_stops_training_in_one_line(
    small_synthetic, torch_home, weights_server, tmp_path, capsys
):
    served, base = weights_server
    marker = tmp_path / "it-ran"
    torch.save({"meta": RunsACommand(str(marker))}, served / "evil.pth")
    line = error_line(
        [*small_synthetic, "train_cfg.max_iters=2", f"load_from={base}/evil.pth"], capsys
    )
    assert line.startswith(f"seglab: error: {torch_home / 'evil.pth'}: refused to load")
    assert not marker.exists()


def _edited_checkpoint(run_dir, path, edit) -> str:
    checkpoint = torch.load(run_dir / "iter_20.pth", map_location="cpu", weights_only=False)
    edit(checkpoint["state_dict"])
    torch.save(checkpoint, path)
    return str(path)


def _head_for_two_classes(weights: dict) -> None:
    for key in ("decode_head.conv_seg.weight", "decode_head.conv_seg.bias"):
        weights[key] = weights[key][:2]


@pytest.mark.train
def test_test_and_infer_refuse_a_checkpoint_whose_head_does_not_fit(
    trained_run_copy, tmp_path, capsys
):
    """mmengine loads what fits and warns: the test would report a random head's mIoU."""
    import numpy as np
    from PIL import Image

    other = _edited_checkpoint(trained_run_copy, tmp_path / "other.pth", _head_for_two_classes)
    line = error_line(
        ["test", f"run_dir={trained_run_copy}", f"checkpoint={other}"], capsys, trained=True
    )
    assert line.startswith(f"seglab: error: checkpoint={other}: does not fit the model: ")
    assert "decode_head.conv_seg.weight is [2, " in line and "(and 1 more)" in line
    assert not (trained_run_copy / "test_metrics.json").exists()

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "image.png")
    args = [
        "infer",
        f"checkpoint={other}",
        f"config={trained_run_copy / 'config.py'}",
        f"image={tmp_path / 'image.png'}",
        f"out={tmp_path / 'out'}",
    ]
    line = error_line(args, capsys, trained=True)
    assert line.startswith(f"seglab: error: checkpoint={other}: does not fit the model: ")
    assert not (tmp_path / "out" / "image.png").exists()


@pytest.mark.train
def test_a_checkpoints_keys_are_logged_with_control_characters_escaped(
    trained_run_copy, tmp_path, capsys
):
    def add_key(weights: dict) -> None:
        weights["evil\x1b]0;owned\x07\x1b[2J"] = torch.zeros(1)

    extra = _edited_checkpoint(trained_run_copy, tmp_path / "extra.pth", add_key)
    capsys.readouterr()
    from seglab.cli import main

    main(["test", f"run_dir={trained_run_copy}", f"checkpoint={extra}"])
    printed = "".join(capsys.readouterr())
    (log,) = (trained_run_copy / "test").glob("*/*.log")
    # mmengine prints the keys that do not match with print(), not to the log
    assert "unexpected key in source state_dict: evil\\x1b]0;owned\\x07\\x1b[2J" in printed
    for text in (printed, log.read_text()):
        assert "\x1b]0" not in text and "\x07" not in text


def test_a_legacy_zip_download_writes_no_file_of_its_choosing(torch_home, weights_server):
    """torch's legacy hub format is read in memory: its member's name (here that of other
    weights in the cache) never chooses a file to write."""
    import zipfile

    served, base = weights_server
    other = checkpoint_loading.weights_url("open-mmlab://resnet18_v1c")
    member = checkpoint_loading.hub_cache_file(other).name
    inner = served.parent / "inner.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}}, inner, _use_new_zipfile_serialization=False)
    with zipfile.ZipFile(served / "legacy.pth", "w") as archive:
        archive.write(inner, arcname=member)
    loaded = CheckpointLoader.load_checkpoint(f"{base}/legacy.pth")
    assert list(loaded["state_dict"]) == ["w"]
    assert sorted(p.name for p in torch_home.iterdir()) == ["legacy.pth"]


@pytest.mark.parametrize(
    "checkpoint, why",
    [
        ({"state_dict": {1: torch.ones(1)}}, "a key of type int"),
        ({"state_dict": [torch.ones(1)]}, "'state_dict' is a list"),
        ({"state_dict": {"w": "x"}}, "holds a str under 'w'"),
        ({1: torch.ones(1)}, "a key of type int"),
    ],
)
def test_a_state_dict_mmengine_cannot_read_is_refused(tmp_path, checkpoint, why):
    torch.save(checkpoint, tmp_path / "odd.pth")
    with pytest.raises(checkpoint_loading.UnsafeCheckpointError, match=why):
        CheckpointLoader.load_checkpoint(str(tmp_path / "odd.pth"))


def _no_meta(checkpoint: dict) -> None:
    del checkpoint["meta"]


@pytest.mark.train
@pytest.mark.parametrize(
    "edit, why",
    [
        (lambda c: c.update(random_state={"torch": torch.zeros(3)}), "'random_state' is not"),
        (lambda c: c.update(message_hub=[1]), "does not hold what mmengine reads"),
        (lambda c: c.update(optimizer={"state": 5}), "does not hold what mmengine reads"),
        (_no_meta, "does not hold what mmengine reads"),
    ],
)
def test_resume_from_a_checkpoint_shaped_otherwise_is_one_line(trained_run_copy, capsys, edit, why):
    run_dir = trained_run_copy
    (run_dir / "iter_20.pth").unlink()  # stopped before its end: resume=true has work to do
    (run_dir / "last_checkpoint").write_text(str(run_dir.resolve() / "iter_10.pth"))
    checkpoint = torch.load(run_dir / "iter_10.pth", map_location="cpu", weights_only=False)
    edit(checkpoint)
    torch.save(checkpoint, run_dir / "iter_10.pth")
    line = error_line([*TRAINED_RUN, "resume=true"], capsys, trained=True)
    assert "iter_10.pth" in line and why in line
