"""Loading errors that name their file, during training.

The checks before training read a sample of each split; any other file that cannot be used
would stop a run much later and far from its cause (a bare cv2 assertion, or `stack expects
each tensor to be equal size` batches after a label of the wrong size was loaded). seglab wraps
every loading transform of the datasets the Runner builds (not the exported config.py) in
`SeglabCheckedLoading`, which names the file and the reason in one line (a DataError) and checks
each label as it is loaded, in the train, val and test loaders alike: one channel, its image's
size, stored in 8 bits (mmseg reads a 16-bit label modulo 256), and only values below the
classes' count or the ignore index, as loaded (after reduce_zero_label and any label map). A
value beyond the classes would otherwise stop training with `Target 7 is out of bounds` and no
file name (a device assert on a GPU), and leave validation pixels out of the metrics unsaid.
"""

from __future__ import annotations

import os

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.config import Config
from mmseg.registry import TRANSFORMS
from PIL import Image

from seglab.checks.data_files import (
    dataset_classes,
    is_wide_label,
    leaf_datasets,
    too_many_pixels,
    wide_label_error,
)
from seglab.errors import DataError

CHECKED_LOADING = "SeglabCheckedLoading"


def check_files_as_they_load(cfg: Config) -> None:
    """Wrap the loading transforms of every dataset `cfg` trains, validates or tests on."""
    for _key, dataset in leaf_datasets(cfg):
        pipeline = dataset.get("pipeline")
        if pipeline:
            limits = _label_limits(dataset)
            dataset["pipeline"] = [_checked(transform, limits) for transform in pipeline]


def _label_limits(dataset: dict) -> dict:
    """What a loaded label may hold: `num_classes` (None: not known here) and the ignore index."""
    try:
        classes = dataset_classes(dataset)
    except Exception:  # a type no registry holds: the checks before training name it
        classes = None
    return dict(
        num_classes=len(classes) if classes is not None else None,
        ignore_index=dataset.get("ignore_index", 255),
    )


def _checked(transform, limits: dict):
    """The transform with its loading steps wrapped, also inside a wrapper's `transforms`
    (TestTimeAug holds a list of lists of them)."""
    if isinstance(transform, list):
        return [_checked(t, limits) for t in transform]
    if not isinstance(transform, dict):
        return transform
    kind = transform.get("type")
    if isinstance(kind, str) and kind.startswith("Load") and kind != CHECKED_LOADING:
        return dict(type=CHECKED_LOADING, transform=transform, **limits)
    if isinstance(transform.get("transforms"), list):
        return {**transform, "transforms": _checked(transform["transforms"], limits)}
    return transform


class CheckedLoading(BaseTransform):
    """Runs one loading transform; a failure names the file it was reading, and a label it
    loads must be one channel of its image's size, 8 bits deep, with values below
    `num_classes` (when known) or equal to `ignore_index`."""

    def __init__(
        self, transform: dict, num_classes: int | None = None, ignore_index: int = 255
    ) -> None:
        self.loading = TRANSFORMS.build(transform)
        self.reads_label = "Annotation" in transform["type"]
        # mmseg's 2-D label loader (the biomedical ones load volumes)
        self.checks_label = transform["type"] == "LoadAnnotations"
        self.num_classes, self.ignore_index = num_classes, ignore_index

    def transform(self, results: dict) -> dict | None:
        path = results.get("seg_map_path" if self.reads_label else "img_path")
        try:
            _read_header(path)  # mmcv decodes with OpenCV, whose pixel limit is far higher
            results = self.loading(results)
        except Image.DecompressionBombError as err:
            raise DataError(too_many_pixels(path, err)) from err
        except Exception as err:
            raise DataError(f"{path}: {_reason(path, err)}; replace or remove it") from err
        if results is not None and self.checks_label:
            _check_label(results)
            _check_bit_depth(results.get("seg_map_path"))
            if self.num_classes is not None:
                self._check_values(results)
        return results

    def _check_values(self, results: dict) -> None:
        """Values as loaded: below the classes' count, or the ignore index."""
        label = results.get("gt_seg_map")
        if label is None or label.dtype != np.uint8:
            return
        counts = np.bincount(label.ravel(), minlength=256)
        if 0 <= self.ignore_index < counts.size:
            counts[self.ignore_index] = 0
        beyond = np.flatnonzero(counts[self.num_classes :])
        if not beyond.size:
            return
        value = int(beyond[0]) + self.num_classes
        reduce_zero = bool(getattr(self.loading, "reduce_zero_label", None))
        # reduce_zero_label subtracted 1 as the label loaded: the file holds value + 1
        stored = value + 1 if reduce_zero else value
        mapped = " (after the data set's label map)" if results.get("label_map") else ""
        highest = self.num_classes if reduce_zero else self.num_classes - 1
        raise DataError(
            f"{results.get('seg_map_path')}: dataset.classes has {self.num_classes} classes but "
            f"the label holds label {stored}{mapped} in {int(counts[value])} pixels (with "
            f"dataset.reduce_zero_label={str(reduce_zero).lower()}, expected labels 0..{highest} "
            f"or {self.ignore_index}); fix or remove the file, or add the missing classes"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.loading!r})"


def _read_header(path: object) -> None:
    """Pillow's look at a file's header, which refuses a decompression bomb before anything
    is decoded; a file Pillow cannot read is left to the loader to name."""
    if not isinstance(path, str) or not os.path.isfile(path):
        return
    try:
        with Image.open(path):
            pass
    except Image.DecompressionBombError:
        raise
    except Exception:  # noqa: BLE001  (a file Pillow cannot read: the loader names it, see above)
        return


def _check_bit_depth(path: str | None) -> None:
    """mmseg casts a label to uint8 as it loads it: a 16-bit file's values over 255 would
    become others (257 becomes 1) without a word. The file's mode is in its header."""
    if not path or not os.path.isfile(path):
        return
    try:
        with Image.open(path) as stored:
            if not is_wide_label(stored.mode):
                return
            mode, highest = stored.mode, np.asarray(stored).max(initial=0)
    except Exception:  # read by mmseg's decoder, not by Pillow
        return
    if highest > 255:
        raise DataError(wide_label_error(path, mode, highest))


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
