"""Checks of the data files every dataloader reads, run before training.

One pass over each split's file list, as mmseg's own dataset class finds it (folders, suffixes,
`ann_file` split lists): no split is empty, every image has its label. Then a sample of each
split, spread over the whole list, is read: each label has one channel, its image's size and only
the values the classes allow, in 8 bits; masks saved as 0/255 are refused, because mmseg
ignores 255 and such a run would score every object pixel as ignored (mIoU 100).
Files outside the sample are checked as they load (seglab/run/data_loading.py).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from mmengine.config import Config
from PIL import Image

from seglab.checks.label_values import (
    ColourLabel,
    SampledLabel,
    colour_label_error,
    dataset_classes,
    judge_labels,
    labels_folder,
    reduces_zero_label,
)
from seglab.config import data_layout
from seglab.errors import ConfigError

__all__ = ["dataset_classes", "labels_folder", "reduces_zero_label"]  # used from here too

DATALOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")
LABELS_SAMPLED_PER_SPLIT = 16


def leaf_datasets(cfg: Config) -> Iterator[tuple[str, dict]]:
    """(key, dataset config) of every dataset the dataloaders read, inside wrappers too."""
    for loader in DATALOADERS:
        if cfg.get(loader):
            yield from _leaves(f"{loader}.dataset", cfg[loader]["dataset"])


def _leaves(key: str, dataset: dict) -> Iterator[tuple[str, dict]]:
    if "datasets" in dataset:  # ConcatDataset
        for i, inner in enumerate(dataset["datasets"]):
            yield from _leaves(f"{key}.datasets[{i}]", inner)
    elif "dataset" in dataset:  # RepeatDataset, MultiImageMixDataset
        yield from _leaves(f"{key}.dataset", dataset["dataset"])
    else:
        yield key, dataset


def check_data_roots(cfg: Config) -> None:
    for key, dataset in leaf_datasets(cfg):
        root = dataset.get("data_root")
        if root and not os.path.isdir(root):
            near = nearest_folder(root)
            raise ConfigError(
                f"dataset.data_root={root!r} does not exist (read by {key}); "
                + (
                    f"did you mean dataset.data_root={near}?"
                    if near
                    else "point it at your copy with dataset.data_root=PATH"
                )
            )
        images = os.path.join(root or "", dataset.get("data_prefix", {}).get("img_path", ""))
        if not os.path.isdir(images):
            # dataset=custom's keys (conf/dataset/custom.yaml) choose its folders
            custom = dataset.get("type") == "BaseSegDataset" and root
            found = layout_overrides(root) if custom else None
            raise ConfigError(
                f"{key}.data_prefix.img_path={images!r} does not exist; expected the "
                f"{dataset['type']} folder layout under dataset.data_root={root!r}"
                + (f"; it holds another layout: set {found}" if found else "")
            )


def nearest_folder(path: str) -> str | None:
    """The folder beside `path` whose name is closest to its name (`data/road` for
    `data/roads`), or None."""
    import difflib

    parent, name = os.path.split(os.path.normpath(path))
    try:
        folders = [f for f in os.listdir(parent or ".") if os.path.isdir(os.path.join(parent, f))]
    except OSError:
        return None
    match = difflib.get_close_matches(name, folders, n=1, cutoff=0.7)
    return os.path.join(parent, match[0]) if match else None


# folder names of the layouts researchers have (mmseg's img_dir/ann_dir, ADE20K's, VOC's...)
IMAGE_FOLDERS = ("img_dir", "images", "imgs", "img", "image", "JPEGImages")
LABEL_FOLDERS = (
    "ann_dir",
    "annotations",
    "anns",
    "ann",
    "labels",
    "label",
    "masks",
    "SegmentationClass",
)
TRAIN_SPLITS = ("train", "training")
VAL_SPLITS = ("val", "validation", "valid", "test")


def layout_overrides(root: str) -> str | None:
    """The `dataset=custom` overrides that read the image and label folders found under
    `root` (`dataset.img_dir=img_dir dataset.ann_dir=ann_dir dataset.train_split=train
    dataset.val_split=val` for mmseg's layout), or None when no such pair is there."""
    present = {f for f in os.listdir(root) if os.path.isdir(os.path.join(root, f))}
    image = next((f for f in IMAGE_FOLDERS if f in present), None)
    label = next((f for f in LABEL_FOLDERS if f in present), None)
    if image is None or label is None:
        return None
    splits = set(os.listdir(os.path.join(root, image)))
    train = next((s for s in TRAIN_SPLITS if s in splits), None)
    val = next((s for s in VAL_SPLITS if s in splits), None)
    parts = [f"dataset.img_dir={image}", f"dataset.ann_dir={label}"]
    if train and val:
        parts += [f"dataset.train_split={train}", f"dataset.val_split={val}"]
    return " ".join(parts)


def check_data_files(cfg: Config) -> tuple[int, int] | None:
    """Every split's file list and a sample of its files; returns the largest sampled
    training image as (height, width), for the crop check, or None when none was read."""
    check_data_roots(cfg)
    train_sizes: list[tuple[int, int]] = []
    for key, dataset, instance, entries in listed_splits(cfg):
        sizes = check_sample(key, dataset, instance, [entries[i] for i in spread(len(entries))])
        if key.startswith("train_dataloader"):
            train_sizes += sizes
    return max(train_sizes, key=lambda hw: hw[0] * hw[1], default=None)


def listed_splits(
    cfg: Config, unlisted: Callable[[str, dict], None] | None = None
) -> Iterator[tuple[str, dict, Any, list[dict]]]:
    """(key, dataset config, dataset, its entries) of each split the dataloaders read, once
    each (test_dataloader is often val_dataloader again), its file list checked; `unlisted` is
    told of a dataset that cannot be listed here."""
    seen: set[tuple[str, ...]] = set()
    for key, dataset in leaf_datasets(cfg):
        listed = list_data(key, dataset)
        if listed is None:
            if unlisted is not None:
                unlisted(key, dataset)
            continue
        instance, entries = listed
        paths = tuple(e["img_path"] for e in entries)
        if paths in seen:
            continue
        seen.add(paths)
        check_file_list(key, instance, entries)
        yield key, dataset, instance, entries


def list_data(key: str, dataset: dict) -> tuple[Any, list[dict]] | None:
    """The dataset (built without its pipeline or data) and the entries its own
    `load_data_list` finds; None where it cannot list them here (mmseg then reports it)."""
    from mmseg.registry import DATASETS

    dataset_cls = DATASETS.get(dataset["type"])
    if dataset_cls is None or not hasattr(dataset_cls, "load_data_list"):
        return None
    args = {k: v for k, v in dataset.items() if k not in ("type", "pipeline", "lazy_init")}
    try:
        instance = dataset_cls(**args, pipeline=[], lazy_init=True)
    except Exception:  # noqa: BLE001  (any dataset class's own refusal: mmseg names it at build)
        return None
    ann_file = getattr(instance, "ann_file", "")
    if ann_file and not os.path.exists(ann_file):
        raise ConfigError(
            f"{key}.ann_file={dataset.get('ann_file')!r}: {ann_file} does not exist; expected a "
            "file listing the split's image names, or ann_file='' to read the whole folder"
        )
    try:
        return instance, instance.load_data_list()
    except OSError as err:  # listing the folder (mmseg's scandir follows symbolic links)
        raise ConfigError(_listing_error(key, instance, err)) from None
    except Exception:  # noqa: BLE001  (a listing only mmseg's own run can explain: it reports it)
        return None


def _listing_error(key: str, instance: Any, err: OSError) -> str:
    folder = getattr(instance, "data_prefix", {}).get("img_path") or ""
    path = err.filename or folder
    if err.errno == errno.ELOOP and err.filename:
        # the first symbolic link on the path below the folder is the one that loops
        link, parts = folder, os.path.relpath(err.filename, folder).split(os.sep)
        for part in parts:
            link = os.path.join(link, part)
            if os.path.islink(link):
                return (
                    f"{key}: {link} is a symbolic link to {os.readlink(link)!r}, which leads "
                    f"back into a folder that holds it, so listing {folder} never ends "
                    f"({err.strerror}); remove the link or point it outside the data folder"
                )
    return (
        f"{key}: cannot list the images in {folder}: {path}: {err.strerror or err}; "
        "expected a folder seglab can read"
    )


def check_file_list(key: str, instance: Any, entries: list[dict]) -> None:
    """No split is empty; every listed image exists and has a label."""
    prefix = getattr(instance, "data_prefix", {})
    if not entries:
        raise ConfigError(
            f"{key}: no images ending in {instance.img_suffix!r} in {prefix.get('img_path')}"
            + (
                _other_endings(prefix.get("img_path"), instance.img_suffix)
                or "; expected the split's images there (dataset.img_suffix sets the ending)"
            )
        )
    for path_key in ("img_path", "seg_map_path"):
        missing = [e for e in entries if e.get(path_key) and not os.path.isfile(e[path_key])]
        if not missing:
            continue
        first = missing[0]
        if path_key == "img_path":  # listed by an ann_file
            raise ConfigError(
                f"{key}.ann_file={instance.ann_file!r} lists {len(missing)} images that do not "
                f"exist, the first {first['img_path']}; expected files ending in "
                f"{instance.img_suffix!r} in {prefix.get('img_path')}"
                + _other_endings(prefix.get("img_path"), instance.img_suffix)
            )
        labels = prefix.get("seg_map_path")
        raise ConfigError(
            f"{key}: {len(missing)} of {len(entries)} images have no label, the first "
            f"{first['img_path']} (no {first['seg_map_path']}); expected a label of the same "
            f"name ending in {instance.seg_map_suffix!r} (dataset.seg_map_suffix) in {labels}"
            # no label found at all: the ending is wrong rather than some labels missing
            + (_label_endings(instance, labels) if len(missing) == len(entries) else "")
        )


def _label_endings(instance: Any, labels: str) -> str:
    """`, which holds 4 '.bmp' files: set dataset.seg_map_suffix=.bmp` where the label folder
    holds images whose names are the images' with another ending."""
    found = data_layout.describe_endings(labels) if os.path.isdir(labels) else ""
    if not found:
        return ""
    images = instance.data_prefix.get("img_path")
    ending = data_layout.label_suffix("", images, instance.img_suffix, labels, "")
    return f", which holds {found}" + (f": set dataset.seg_map_suffix={ending}" if ending else "")


def _other_endings(folder: str | None, suffix: str) -> str:
    """`, which holds 4 '.png' files: set dataset.img_suffix=.png` where the images in `folder`
    end otherwise than `suffix`, else ''."""
    counts = data_layout.endings(folder) if folder and os.path.isdir(folder) else None
    if not counts or counts.most_common(1)[0][0] == suffix:
        return ""
    ending = counts.most_common(1)[0][0]
    found = data_layout.describe_endings(folder)
    return f", which holds {found}: set dataset.img_suffix={ending}"


def spread(count: int, samples: int = LABELS_SAMPLED_PER_SPLIT) -> list[int]:
    """Up to `samples` indices spread evenly over range(count), the first and last included."""
    if count <= samples:
        return list(range(count))
    return sorted({round(i * (count - 1) / (samples - 1)) for i in range(samples)})


def check_sample(key: str, dataset: dict, instance: Any, sample: list[dict]) -> list[tuple]:
    """Each sampled label fits its image and holds only values the classes allow; returns the
    sampled images' (height, width)."""
    sizes, labels = [], []
    for entry in sample:
        try:
            size, label = read_entry(entry)
        except ColourLabel as err:
            raise colour_label_error(err, key, dataset, instance) from None
        sizes.append(size)
        if label is not None:
            labels.append(label)
    judge_labels(key, dataset, instance, labels)
    return sizes


def read_entry(entry: dict) -> tuple[tuple[int, int], SampledLabel | None]:
    """(the image's (height, width), its label's values and pixel counts, or None where it
    has none); a label that is no one-channel map of its image's size is a ConfigError."""
    image_size = _image_size(entry["img_path"])
    seg_path = entry.get("seg_map_path")
    if not seg_path:
        return image_size[::-1], None
    values, counts = _label_values(seg_path, entry["img_path"], image_size)
    return image_size[::-1], SampledLabel(seg_path, values, counts)


def _image_size(path: str) -> tuple[int, int]:
    """(width, height) from the file's header."""
    try:
        with Image.open(path) as image:
            return image.size
    except Image.DecompressionBombError as err:
        raise ConfigError(too_many_pixels(path, err)) from None
    except OSError as err:
        raise ConfigError(
            f"{path} cannot be read as an image ({err}); replace or remove it"
        ) from None


def too_many_pixels(path: str | None, err: Exception) -> str:
    """The one line for an image Pillow refuses to decode: more pixels than its limit."""
    return (
        f"{path}: {str(err).rstrip('.')}: Pillow refuses to decode it; downscale or tile the "
        "image, or remove it"
    )


# Pillow's modes of one channel wider than 8 bits; mmseg reads a label as 8 bits (uint8)
WIDE_LABEL_MODES = ("I", "F")


def is_wide_label(mode: str) -> bool:
    return mode in WIDE_LABEL_MODES or mode.startswith("I;")


def wide_label_error(path: str, mode: str, highest: float) -> str:
    """A label stored in more than 8 bits that holds a value over 255, which mmseg would read
    modulo 256."""
    bits = "16-bit" if mode.startswith("I;16") else f"{mode}-mode (over 8 bits)"
    value = int(highest)
    return (
        f"{path} is a {bits} label holding the value {value}, which mmseg reads as 8 bits "
        f"(uint8), so {value} would silently become {value % 256}; expected class indices "
        "saved as an 8-bit (mode L or P) image"
    )


def _label_values(
    path: str, image_path: str, image_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a label that is one channel of its image's size, and the pixels
    each covers."""
    try:
        label = Image.open(path)
    except Image.DecompressionBombError as err:
        raise ConfigError(too_many_pixels(path, err)) from None
    except OSError as err:
        raise ConfigError(
            f"{path} cannot be read as a label image ({err}); replace or remove it"
        ) from None
    with label:
        bands = label.getbands()
        if len(bands) > 1:
            colours = np.unique(np.asarray(label.convert("RGB")).reshape(-1, 3), axis=0)
            raise ColourLabel(path, label.mode, [tuple(int(c) for c in rgb) for rgb in colours])
        if label.size != image_size:
            raise ConfigError(
                f"{path} is {label.size[0]}x{label.size[1]} pixels but its image {image_path} "
                f"is {image_size[0]}x{image_size[1]}; expected a label of its image's size"
            )
        try:
            values, counts = np.unique(np.asarray(label), return_counts=True)
        except OSError as err:
            raise ConfigError(f"{path} cannot be decoded ({err}); replace or remove it") from None
        if is_wide_label(label.mode) and values.size and values[-1] > 255:
            raise ConfigError(wide_label_error(path, label.mode, values[-1]))
        return values, counts
