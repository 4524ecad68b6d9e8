"""`seglab test`, `seglab infer` and `seglab env` on a checkpoint from a short training."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmseg.apis import inference_model, init_model
from PIL import Image

from seglab.cli import main
from tests.helpers.commands import error_line


def digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


@pytest.mark.train
def test_test_matches_the_final_validation_and_leaves_the_run_as_it_was(
    trained_run_copy, tmp_path, capsys
):
    trained = trained_run_copy
    before = digest(trained / "config.py")
    main(["test", f"run_dir={trained}", f"show_dir={tmp_path / 'shown'}"])
    assert f"{tmp_path / 'shown'}/" in capsys.readouterr().out  # where the drawings went
    tested = json.loads((trained / "test_metrics.json").read_text())
    validated = json.loads((trained / "metrics.json").read_text())
    assert tested["checkpoint"].endswith("iter_20.pth")
    assert tested["mIoU"] == validated["mIoU"], "the test split of the synthetic data is its val"
    assert "IoU.square" in tested
    assert digest(trained / "config.py") == before
    # one drawing per test image, flat, under the image's own name
    test_set = Config.fromfile(str(trained / "config.py")).test_dataloader.dataset
    images = Path(test_set.data_root) / test_set.data_prefix.img_path
    drawn = sorted(p.name for p in (tmp_path / "shown").iterdir())
    assert drawn == sorted(f"{p.stem}.png" for p in images.glob("*.jpg")) and len(drawn) == 4

    main(["test", f"run_dir={trained}", "tta=true", f"checkpoint={trained / 'iter_10.pth'}"])
    tta = json.loads((trained / "test_metrics_tta.json").read_text())
    assert tta["checkpoint"].endswith("iter_10.pth") and 0 <= tta["mIoU"] <= 100


def validation_images() -> Path:
    """The trained run's validation images (16 + 4 of 64 pixels) in the session's cache, not
    those of another synthetic set a test made there."""
    wanted = {"num_train": 16, "num_val": 4, "image_size": 64}
    images = Path(os.environ["SEGLAB_CACHE"]).glob("synthetic_shapes/*/images/validation")
    return next(
        p
        for p in images
        if (p.parent.parent / "seglab-synthetic.json").is_file()
        and wanted.items()
        <= json.loads((p.parent.parent / "seglab-synthetic.json").read_text()).items()
    )


@pytest.mark.train
def test_infer_writes_an_overlay_and_a_label_map_per_image(trained_run, tmp_path):
    trained = trained_run
    folder = validation_images()
    main(
        [
            "infer",
            f"checkpoint={trained / 'iter_20.pth'}",
            f"image={folder}",
            f"out={tmp_path / 'out'}",
        ]
    )
    stems = sorted(p.stem for p in folder.glob("*.jpg"))
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted([f"{s}.png" for s in stems] + [f"{s}_labels.png" for s in stems])
    image = next(folder.glob("*.jpg"))
    assert Image.open(tmp_path / "out" / f"{image.stem}.png").size == Image.open(image).size
    # the label map is mmseg's own prediction for the image, one class index per pixel
    model = init_model(str(trained / "config.py"), str(trained / "iter_20.pth"), device="cpu")
    expected = inference_model(model, str(image)).pred_sem_seg.data[0].numpy()
    labels = np.asarray(Image.open(tmp_path / "out" / f"{image.stem}_labels.png"))
    assert labels.dtype == np.uint8 and np.array_equal(labels, expected)


@pytest.mark.train
def test_infer_takes_a_run_directory_for_its_last_checkpoint(trained_run, tmp_path):
    image = next(validation_images().glob("*.jpg"))
    main(["infer", f"checkpoint={trained_run}", f"image={image}", f"out={tmp_path / 'dir'}"])
    last = trained_run / "iter_20.pth"
    main(["infer", f"checkpoint={last}", f"image={image}", f"out={tmp_path / 'file'}"])
    for name in (f"{image.stem}.png", f"{image.stem}_labels.png"):
        assert (tmp_path / "dir" / name).read_bytes() == (tmp_path / "file" / name).read_bytes()


@pytest.mark.train
@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("devcie=cpu", "devcie=cpu: no option devcie; did you mean device?"),
        ("image=EMPTY", "the folder holds no image"),
        ("image=NOTES", "not an image; expected one of .jpg"),
        ("device=gpu", "device=gpu: "),
        pytest.param(
            "device=cuda:0",
            "device=cuda:0: torch",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here"),
        ),
    ],
)
def test_infer_refuses_what_it_cannot_use_in_one_line(trained_run, option, expected, capsys):
    Path("empty").mkdir()
    Path("notes.txt").write_text("not an image\n")
    option = option.replace("EMPTY", "empty").replace("NOTES", "notes.txt")
    args = [f"checkpoint={trained_run / 'iter_20.pth'}", f"image={validation_images()}", "out=o"]
    args = [a for a in args if a.split("=")[0] != option.split("=")[0]] + [option]
    assert expected in error_line(["infer", *args], capsys)
    assert not Path("o").exists()


@pytest.mark.train
@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("test_dataloader.batch_sise=2", "no key batch_sise under test_dataloader; did you mean"),
        (
            "checkpiont=iter_10.pth",
            "no key checkpiont in the run's config; did you mean checkpoint?",
        ),
        ("model.decode_head.lossdecode.type=X", "did you mean loss_decode?"),
        ("test_dataloader.dataset.pipeline.9.type=X", "pipeline is a list of"),
    ],
)
def test_test_key_typos_name_the_closest_key(trained_run, option, expected, capsys):
    line = error_line(["test", f"run_dir={trained_run}", option], capsys)
    assert line.startswith(f"seglab: error: {option}: ") and expected in line


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
