"""`seglab test`, `seglab infer` and `seglab env` on a checkpoint from a short training."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from seglab.cli import main


def digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


@pytest.mark.train
def test_test_matches_the_final_validation_and_leaves_the_run_as_it_was(trained_run_copy, tmp_path):
    trained = trained_run_copy
    before = digest(trained / "config.py")
    main(["test", f"run_dir={trained}", f"show_dir={tmp_path / 'shown'}"])
    tested = json.loads((trained / "test_metrics.json").read_text())
    validated = json.loads((trained / "metrics.json").read_text())
    assert tested["checkpoint"].endswith("iter_20.pth")
    assert tested["mIoU"] == validated["mIoU"], "the test split of the synthetic data is its val"
    assert "IoU.square" in tested
    assert digest(trained / "config.py") == before
    assert len(list((tmp_path / "shown").glob("**/*.png"))) == 4  # one overlay per image

    main(["test", f"run_dir={trained}", "tta=true", f"checkpoint={trained / 'iter_10.pth'}"])
    tta = json.loads((trained / "test_metrics_tta.json").read_text())
    assert tta["checkpoint"].endswith("iter_10.pth") and 0 <= tta["mIoU"] <= 100


@pytest.mark.train
def test_infer_writes_an_overlay_per_image(trained_run, tmp_path):
    trained = trained_run
    images = Path(os.environ["SEGLAB_CACHE"]).glob("synthetic_shapes/*/images/validation")
    folder = next(
        p
        for p in images
        if (p.parent.parent / "seglab-synthetic.json").is_file()
        and json.loads((p.parent.parent / "seglab-synthetic.json").read_text())["image_size"] == 64
    )
    main(
        [
            "infer",
            f"checkpoint={trained / 'iter_20.pth'}",
            f"image={folder}",
            f"out={tmp_path / 'out'}",
        ]
    )
    written = sorted((tmp_path / "out").glob("*.png"))
    assert [p.stem for p in written] == sorted(p.stem for p in folder.glob("*.jpg"))
    assert Image.open(written[0]).size == Image.open(next(folder.glob("*.jpg"))).size


def test_env_reports_the_stack(capsys):
    main(["env"])
    out = capsys.readouterr().out
    assert "mmcv compiled ops: load" in out and "mmsegmentation: 1.2.2" in out
    assert "CUDA available:" in out


def test_a_run_directory_without_checkpoints_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "config.py").write_text("model = dict(type='EncoderDecoder')\n")
    with pytest.raises(SystemExit):
        main(["test", f"run_dir={tmp_path}"])
    assert "holds no checkpoint" in capsys.readouterr().err
