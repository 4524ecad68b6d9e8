"""What a label file's values mean under a data set's settings (its classes, the ignore
index, reduce_zero_label), and the one line for values that would make a run wrong: read from a
sample before training (data_files.py) and from every file by `seglab data check`."""

from __future__ import annotations

import inspect
import os
import shlex
from typing import Any

import numpy as np

from seglab.errors import ConfigError

# Above this share of a split's sampled label pixels, 255 (mmseg's ignore index) is taken for a
# class the labels were saved with rather than for pixels left out: densely labelled data sets
# (ADE20K, Cityscapes) leave out a small part of their pixels, 0/255 masks every object pixel.
IGNORED_SHARE_OF_A_CLASS = 0.25
# how to turn 0/255 masks (and any 0/1 ones among them) into 0/1 class indices, in place: every
# label under the folder that holds the splits' label folders, all splits at once
TO_CLASS_INDICES = (
    'python -c "import glob, sys, numpy as np; from PIL import Image; '
    "[Image.fromarray((np.asarray(Image.open(p)) > 0).astype(np.uint8)).save(p) "
    "for p in glob.glob(sys.argv[1] + '/**/*' + sys.argv[2], recursive=True)]\" "
    "{folder} {suffix}"
)


def labels_folder(seg_map_path: str, data_root: str | None) -> str:
    """The folder above a split's label folder (`ann_dir` of `ann_dir/train`), unless that is
    the data set's root: there the split's own."""
    parent = os.path.dirname(os.path.normpath(seg_map_path))
    root = os.path.normpath(data_root) if data_root else None
    return parent if parent and parent != root and os.path.isdir(parent) else seg_map_path


def dataset_classes(dataset: dict) -> tuple[str, ...] | None:
    """The class names a dataset config declares, or its registered class's METAINFO."""
    classes = (dataset.get("metainfo") or {}).get("classes")
    if classes is None:
        from mmseg.registry import DATASETS

        dataset_cls = DATASETS.get(dataset["type"])
        classes = getattr(dataset_cls, "METAINFO", {}).get("classes")
    return tuple(classes) if classes is not None else None


def reduces_zero_label(dataset: dict) -> bool:
    """What mmseg's LoadAnnotations will do: its own setting, else the dataset's, else the
    registered dataset class's default (ADE20KDataset: true)."""
    for transform in dataset.get("pipeline") or []:
        setting = transform.get("reduce_zero_label")
        if transform.get("type") == "LoadAnnotations" and setting is not None:
            return bool(setting)
    if "reduce_zero_label" in dataset:
        return bool(dataset["reduce_zero_label"])
    from mmseg.registry import DATASETS

    default = inspect.signature(DATASETS.get(dataset["type"])).parameters.get("reduce_zero_label")
    return bool(default.default) if default is not None else False


def judge_labels(key: str, dataset: dict, instance: Any, labels: list[SampledLabel]) -> None:
    """The label values read (a sample before training, every file in `seglab data check`)
    against the classes, the ignore index and reduce_zero_label: one line for the first that
    would make the run wrong."""
    classes = dataset_classes(dataset)
    # with a label map (classes picked from the dataset's own), mmseg maps the values itself
    if classes is None or getattr(instance, "label_map", None) or not labels:
        return
    ignore = getattr(instance, "ignore_index", 255)
    reduce_zero = reduces_zero_label(dataset)
    highest = len(classes) if reduce_zero else len(classes) - 1
    for label in labels:
        bad = [v for v in label.values if v > highest and v != ignore]
        if bad:
            raise ConfigError(_value_error(label, bad[0], classes, reduce_zero, highest, ignore))
    if len(classes) >= 2:
        _check_ignore_as_a_class(key, instance, classes, labels, ignore, reduce_zero)
    if reduce_zero:
        check_zero_is_a_class(key, classes, labels, ignore)


def _value_error(
    label: SampledLabel, value: int, classes: tuple, reduce_zero: bool, highest: int, ignore: int
) -> str:
    n = len(classes)
    fits = (
        # stored as 1..n with 0 for "not labelled": what reduce_zero_label reads
        "; the labels look like 1..N with 0 for unlabelled pixels: set "
        "dataset.reduce_zero_label=true"
        if not reduce_zero and value == n and 0 in label.values
        else "; add the missing classes or fix reduce_zero_label"
    )
    return (
        f"dataset.classes has {n} classes but {label.path} holds label {value} (with "
        f"dataset.reduce_zero_label={str(reduce_zero).lower()}, expected labels 0..{highest} "
        f"or {ignore}){fits}"
    )


# reduce_zero_label turns 0 into the ignore index: above this share of the label pixels, a 0
# is taken for a class of its own (background) rather than for the unlabelled rim ADE20K's
# labels hold (about a tenth of its pixels)
ZERO_SHARE_OF_A_CLASS = 0.25


def check_zero_is_a_class(
    key: str, classes: tuple, labels: list[SampledLabel], ignore: int
) -> None:
    """reduce_zero_label on labels stored 0..N-1: every value 1..N-1 occurs but N, the last
    class once reduced, never does, while 0, which becomes `ignore`, covers a class's share of
    the pixels. (A class missing from a sample says little where there are many: only labels
    that hold all the others are judged.)"""
    n = len(classes)
    seen = {v for label in labels for v in label.values}
    pixels = sum(label.pixels for label in labels)
    zeros = sum(label.counts.get(0, 0) for label in labels)
    if not pixels or n in seen or not all(v in seen for v in range(1, n)):
        return
    share = zeros / pixels
    if share > ZERO_SHARE_OF_A_CLASS:
        raise ConfigError(
            f"dataset.reduce_zero_label=true: {share:.0%} of the label pixels read from {key} "
            f"are 0, which it turns into {ignore} (ignored), and none is {n}, which it would "
            f"make class {n - 1} ({classes[-1]!r}): the labels look like classes 0..{n - 1}, "
            f"0 a class of its own; set dataset.reduce_zero_label=false"
        )


class SampledLabel:
    """A sampled label file's distinct values and how many pixels hold each."""

    def __init__(self, path: str, values: np.ndarray, counts: np.ndarray) -> None:
        self.path, self.values = path, [int(v) for v in values]
        self.counts = dict(zip(self.values, (int(c) for c in counts), strict=True))
        self.pixels = sum(self.counts.values())

    def ignored_share(self, ignore: int) -> float:
        return self.counts.get(ignore, 0) / self.pixels if self.pixels else 0.0

    def looks_like_a_mask(self, ignore: int) -> bool:
        """One value besides `ignore`, and `ignore` a class's share of the pixels."""
        others = [v for v in self.values if v != ignore]
        return len(others) <= 1 and self.ignored_share(ignore) > IGNORED_SHARE_OF_A_CLASS


class ColourLabel(ConfigError):
    """A label saved as a colour image (RGB), not as class indices; the colours it holds."""

    def __init__(self, path: str, mode: str, colours: list[tuple[int, int, int]]) -> None:
        super().__init__(
            f"{path} is a {len(mode)}-channel ({mode}) colour image; expected a one-channel "
            "label whose pixel values are class indices"
        )
        self.path, self.mode, self.colours = path, mode, colours

    def __reduce__(self) -> tuple:  # across processes (seglab data check's workers)
        return ColourLabel, (self.path, self.mode, self.colours)


def dataset_palette(dataset: dict) -> list[list[int]] | None:
    """The palette a dataset config declares, or its registered class's METAINFO."""
    palette = (dataset.get("metainfo") or {}).get("palette")
    if palette is None:
        from mmseg.registry import DATASETS

        palette = getattr(DATASETS.get(dataset["type"]), "METAINFO", {}).get("palette")
    return [list(map(int, c)) for c in palette] if palette else None


def colour_label_error(err: ColourLabel, key: str, dataset: dict, instance: Any) -> ConfigError:
    """The line for colour masks: whether their colours are the data set's palette, and the
    `seglab data palette` command that writes index masks to a folder of their own, with the
    setting that reads it."""
    palette = dataset_palette(dataset)
    known = {tuple(c) for c in palette or []}
    strange = [c for c in err.colours if c not in known]
    seg_path = instance.data_prefix.get("seg_map_path")
    folder = labels_folder(seg_path, instance.data_root)
    out = folder.rstrip("/") + "_index"
    custom = dataset.get("type") == "BaseSegDataset" and folder != seg_path
    setting = (
        f"dataset.ann_dir={os.path.relpath(out, instance.data_root)}"
        if custom
        else f"{key}.data_prefix.seg_map_path="
        + os.path.relpath(os.path.join(out, os.path.relpath(seg_path, folder)), instance.data_root)
    )
    palette_arg = (
        "[" + ",".join(f"[{r},{g},{b}]" for r, g, b in palette) + "]"
        if palette and len(palette) <= 12
        else dataset.get("type")
    )
    colours = ", ".join(str(list(c)) for c in err.colours[:4])
    if palette is None or strange:
        return ConfigError(
            f"{err}: a colour mask ({colours}{', ...' if len(err.colours) > 4 else ''})"
            + (f", and {list(strange[0])} is no colour of the palette" if palette else "")
            + "; write index masks with `seglab data palette "
            + f"{shlex.quote(folder)} out={shlex.quote(out)} palette=[[R,G,B],...]` (one "
            f"colour per class, in class order), then set {setting}"
        )
    return ConfigError(
        f"{err}: a colour mask in the data set's palette ({colours}"
        f"{', ...' if len(err.colours) > 4 else ''}); write index masks with `seglab data "
        f"palette {shlex.quote(folder)} out={shlex.quote(out)} palette={palette_arg}`, then set "
        f"{setting}"
    )


def _check_ignore_as_a_class(
    key: str,
    instance: Any,
    classes: tuple[str, ...],
    labels: list[SampledLabel],
    ignore: int,
    reduce_zero: bool,
) -> None:
    """Masks saved with `ignore` (255) for a class, which mmseg would leave out of the loss and
    the metrics (mIoU 100): the sample holds `ignore` and one other value only; or `ignore`
    covers more than IGNORED_SHARE_OF_A_CLASS of its pixels while a declared class never occurs;
    or most sampled files are masks of one value and `ignore`, whatever a few others hold."""
    seen = {v for label in labels for v in label.values}
    ignored = [label for label in labels if ignore in label.counts]
    n = len(classes)
    indices = "0/1" if n == 2 else f"0..{n - 1}"
    fix = f"save the labels as class indices {indices} ({ignore} only for pixels to ignore)" + (
        ", e.g. "
        + TO_CLASS_INDICES.format(
            folder=shlex.quote(
                labels_folder(instance.data_prefix.get("seg_map_path"), instance.data_root)
            ),
            suffix=shlex.quote(instance.seg_map_suffix),
        )
        if n == 2
        else ""
    )
    if ignored and len(seen - {ignore}) <= 1:
        first = ignored[0]
        raise ConfigError(
            f"{first.path} holds only the values {first.values} and no sampled label of {key} "
            f"holds another class: masks saved as 0/{ignore}, but mmseg ignores {ignore}, so "
            f"every object pixel would be ignored; {fix}"
        )
    if reduce_zero and n == 2 and seen <= {0, 1, ignore}:
        raise ConfigError(
            f"dataset.reduce_zero_label=true: the labels of {key} hold only labels 0 and 1, and "
            "reduce_zero_label would drop class 0; expected false for two-class data"
        )
    if not ignored:
        return
    pixels = sum(label.pixels for label in labels)
    share = sum(label.counts.get(ignore, 0) for label in labels) / pixels
    # class i is stored as i + 1 where reduce_zero_label subtracts 1 as the label loads
    missing = [i for i in range(n) if (i + 1 if reduce_zero else i) not in seen]
    threshold = f"{IGNORED_SHARE_OF_A_CLASS:.0%}"
    if share > IGNORED_SHARE_OF_A_CLASS and missing:
        most = max(ignored, key=lambda label: label.ignored_share(ignore))
        raise ConfigError(
            f"{share:.0%} of the label pixels sampled from {key} are {ignore} and class "
            f"{missing[0]} ({classes[missing[0]]!r}) of the {n} declared never occurs in them "
            f"(e.g. {most.path} holds {most.values}): more than {threshold} at {ignore} reads as "
            f"a class saved as {ignore}, but mmseg ignores {ignore}, so its pixels would be left "
            f"out of training and the metrics; {fix}"
        )
    masks = [label for label in labels if label.looks_like_a_mask(ignore)]
    if len(masks) > len(labels) / 2:
        raise ConfigError(
            f"{len(masks)} of the {len(labels)} labels sampled from {key} hold one value and "
            f"{ignore} only, {ignore} over {threshold} of their pixels (e.g. {masks[0].path} "
            f"holds {masks[0].values}): masks saved as 0/{ignore}, but mmseg ignores {ignore}, "
            f"so their object pixels would be ignored; {fix}"
        )
