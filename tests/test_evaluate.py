"""`seglab test`, `seglab infer` and `seglab env` on a checkpoint from a short training."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.apis import inference_model, init_model
from mmseg.registry import DATASETS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules
from mmseg.visualization import SegLocalVisualizer
from PIL import Image

from seglab.cli import main
from tests.helpers.commands import error_line, run_seglab


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
    # the photo keeps its brightness where the prediction is background (the run predicts only
    # it after 20 iterations), read as the inferencer reads it
    overlay = np.asarray(Image.open(tmp_path / "out" / f"{image.stem}.png"))
    background = labels == 0
    photo = mmcv.imread(str(image), channel_order="rgb")
    assert background.any() and np.array_equal(overlay[background], photo[background])


@pytest.mark.train
def test_an_overlay_blends_the_classes_and_leaves_the_background_as_the_photo(trained_run):
    """A validation image's own labels as the prediction (background, three shapes, 255 for
    the unlabelled outlines): a shape's pixels are blended as mmseg's visualizer blends them,
    the background's and the outlines' are the photo's, where mmseg's overlay greys them."""
    from seglab.drawings import overlay

    image = next(validation_images().glob("*.jpg"))
    annotation = image.parent.parent.parent / "annotations" / "validation" / f"{image.stem}.png"
    prediction = np.asarray(Image.open(annotation)).astype(np.int64) - 1  # reduce_zero_label
    prediction[prediction < 0] = 255
    shapes = (prediction > 0) & (prediction < 4)
    assert shapes.any() and (prediction == 0).any() and (prediction == 255).any()
    photo = mmcv.imread(str(image), channel_order="rgb")
    visualizer = plain_visualizer(trained_run, alpha=0.5)
    sample = SegDataSample(pred_sem_seg=PixelData(data=torch.from_numpy(prediction)[None]))
    theirs = mmseg_drawing(
        visualizer, photo, sample, Path("mmseg.png"), draw_gt=False, with_labels=False
    )
    ours = overlay(photo, prediction, visualizer.dataset_meta, 0.5)
    assert np.array_equal(ours[shapes], theirs[shapes])
    assert np.array_equal(ours[~shapes], photo[~shapes])
    assert not np.array_equal(theirs[~shapes], photo[~shapes])


def plain_visualizer(run_dir: Path, alpha: float = 0.8) -> SegLocalVisualizer:
    """mmseg's visualizer with the run's classes and palette, as its test and inferencer
    build it (alpha: the opacity of the class colours)."""
    meta = Config.fromfile(str(run_dir / "config.py")).test_dataloader.dataset.metainfo
    visualizer = SegLocalVisualizer(name=f"plain-{alpha}", alpha=alpha)
    visualizer.dataset_meta = dict(classes=meta.classes, palette=meta.palette)
    return visualizer


def mmseg_drawing(visualizer: SegLocalVisualizer, photo, sample, path: Path, **options):
    """What mmseg's `add_datasample` writes for `sample`, as an RGB array."""
    visualizer.add_datasample(path.stem, photo, sample, out_file=str(path), **options)
    return mmcv.imread(str(path), channel_order="rgb")


@pytest.mark.train
def test_show_dir_drawings_name_their_halves_and_hide_no_object(trained_run, tmp_path):
    """Each drawing is mmseg's ground truth | prediction pair without its class-name boxes
    (which cover a small object: the pair with them differs), enlarged 4 times (64 pixels are
    under 200), below a white band that holds a caption over each half."""
    main(["test", f"run_dir={trained_run}", f"show_dir={tmp_path / 'shown'}"])
    image = next(validation_images().glob("*.jpg"))
    drawn = mmcv.imread(str(tmp_path / "shown" / f"{image.stem}.png"), channel_order="rgb")

    config = Config.fromfile(str(trained_run / "config.py"))
    register_all_modules()
    test_set = DATASETS.build(config.test_dataloader.dataset)
    (sample,) = [
        test_set[i]["data_samples"]
        for i in range(len(test_set))
        if Path(test_set.get_data_info(i)["img_path"]).name == image.name
    ]
    model = init_model(str(trained_run / "config.py"), str(trained_run / "iter_20.pth"), "cpu")
    sample.pred_sem_seg = inference_model(model, str(image)).pred_sem_seg
    photo = mmcv.imread(str(image), channel_order="rgb")
    visualizer = plain_visualizer(trained_run)
    plain = mmseg_drawing(visualizer, photo, sample, tmp_path / "plain.png", with_labels=False)
    boxed = mmseg_drawing(visualizer, photo, sample, tmp_path / "boxed.png")
    assert plain.shape == (64, 128, 3) and not np.array_equal(plain, boxed)

    band = drawn.shape[0] - 4 * 64
    assert drawn.shape[1] == 4 * 128 and band > 0
    assert np.array_equal(drawn[band:], plain.repeat(4, axis=0).repeat(4, axis=1))
    left, right = drawn[:band, :256], drawn[:band, 256:]
    for caption in (left, right):  # white, with dark letters in it
        assert (caption.min(axis=2) < 100).sum() > 50 and (caption == 255).all(axis=2).mean() > 0.7
    assert not np.array_equal(left, right), "two different captions"


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


@pytest.mark.processes
def test_seglab_test_with_persistent_loader_workers_exits(trained_run_copy):
    """Upstream's test loaders keep 2 persistent workers: `seglab test` printed its metrics
    and then never exited (the workers ignore SIGTERM and SIGINT, see preemption.py)."""
    args = [
        "test",
        f"run_dir={trained_run_copy}",
        "test_dataloader.num_workers=2",
        "test_dataloader.persistent_workers=true",
    ]
    done = run_seglab(args, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "test metrics: " in done.stdout
