"""Loading errors that name their file, during training.

The checks before training read a sample of each split; any other file that cannot be used
would stop a run much later and far from its cause (a bare cv2 assertion, or `stack expects
each tensor to be equal size` batches after a label of the wrong size was loaded). seglab wraps
every loading transform of the datasets the Runner builds (not the exported config.py) in
`SeglabCheckedLoading`, which names the file and the reason in one line (a DataError) and checks
each label as it is loaded: one channel, its image's size.
"""

from __future__ import annotations

import os

from mmcv.transforms import BaseTransform
from mmengine.config import Config
from mmseg.registry import TRANSFORMS

from seglab.data_checks import leaf_datasets
from seglab.errors import DataError

CHECKED_LOADING = "SeglabCheckedLoading"


def check_files_as_they_load(cfg: Config) -> None:
    """Wrap the loading transforms of every dataset `cfg` trains, validates or tests on."""
    for _key, dataset in leaf_datasets(cfg):
        pipeline = dataset.get("pipeline")
        if pipeline:
            dataset["pipeline"] = [_checked(transform) for transform in pipeline]


def _checked(transform: dict) -> dict:
    kind = transform.get("type")
    if isinstance(kind, str) and kind.startswith("Load") and kind != CHECKED_LOADING:
        return dict(type=CHECKED_LOADING, transform=transform)
    return transform


@TRANSFORMS.register_module(name=CHECKED_LOADING)
class CheckedLoading(BaseTransform):
    """Runs one loading transform; a failure names the file it was reading, and a label it
    loads must be one channel of its image's size."""

    def __init__(self, transform: dict) -> None:
        self.loading = TRANSFORMS.build(transform)
        self.reads_label = "Annotation" in transform["type"]
        # mmseg's 2-D label loader (the biomedical ones load volumes)
        self.checks_label = transform["type"] == "LoadAnnotations"

    def transform(self, results: dict) -> dict | None:
        path = results.get("seg_map_path" if self.reads_label else "img_path")
        try:
            results = self.loading(results)
        except Exception as err:
            raise DataError(f"{path}: {_reason(path, err)}; replace or remove it") from err
        if results is not None and self.checks_label:
            _check_label(results)
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.loading!r})"


def _reason(path: str | None, err: Exception) -> str:
    if path and os.path.isfile(path) and os.path.getsize(path) == 0:
        return "the file is empty (0 bytes)"
    if path and not os.path.exists(path):
        return "no such file"
    detail = next((line.strip() for line in str(err).splitlines() if line.strip()), "")
    detail = detail.replace(f": {path}", "") if path else detail  # named once, at the start
    return "cannot be decoded (truncated, or not an image): " + (
        f"{type(err).__name__}: {detail}" if detail else type(err).__name__
    )


def _check_label(results: dict) -> None:
    label, path = results.get("gt_seg_map"), results.get("seg_map_path")
    if label is None:
        return
    if label.ndim != 2:
        raise DataError(
            f"{path}: a label of shape {tuple(label.shape)} ({label.shape[-1]} channels); "
            "expected one channel whose pixel values are class indices (map a colour label's "
            "colours to indices first)"
        )
    image_shape = results.get("ori_shape")  # the image as loaded, before any resize
    if image_shape is not None and tuple(label.shape) != tuple(image_shape[:2]):
        raise DataError(
            f"{path}: the label is {label.shape[1]}x{label.shape[0]} pixels but its image "
            f"{results.get('img_path')} is {image_shape[1]}x{image_shape[0]}; expected a label "
            "of its image's size"
        )
