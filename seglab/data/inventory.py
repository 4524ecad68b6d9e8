"""`seglab data check [OVERRIDES] [workers=N]`: every file of every split, not a sample.

The config the OVERRIDES compose (as training would compose it) names the splits; each split's
files are listed as mmseg's own dataset class lists them, then read in worker processes: each
image's size and content hash, each label's values and pixels per value. The report gives, per
split, the counts, image sizes, the pixel share of each class as training sees it (after
reduce_zero_label), classes absent, duplicates within and across splits, and class weights for
the training split (median frequency balancing). Findings that would make a run wrong are the
checks before training's own (checks/label_values.py) applied to every file: they end the
command with exit code 2 and the same one line training would stop with.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seglab.checks.data_files import (
    ColourLabel,
    SampledLabel,
    check_data_roots,
    colour_label_error,
    dataset_classes,
    judge_labels,
    listed_splits,
    read_entry,
    reduces_zero_label,
)
from seglab.checks.label_settings import heads, losses
from seglab.errors import ConfigError

USAGE = "seglab data check [OVERRIDES] [workers=N]"
CHUNK = 64  # files per task handed to a worker process


@dataclass
class FileRecord:
    """What one worker read of one image and its label; `error` where either cannot be used."""

    img_path: str
    size: tuple[int, int] | None = None
    digest: str = ""
    label: SampledLabel | None = None
    error: ConfigError | None = None


def read_record(entry: dict) -> FileRecord:
    record = FileRecord(entry["img_path"])
    try:
        record.size, record.label = read_entry(entry)
        with open(entry["img_path"], "rb") as image:
            record.digest = hashlib.blake2b(image.read(), digest_size=16).hexdigest()
    except ConfigError as err:
        record.error = err
    return record


@dataclass
class Split:
    key: str
    dataset: dict
    instance: Any
    entries: list[dict]
    records: list[FileRecord] = field(default_factory=list)


def check_command(args: Sequence[str]) -> None:
    overrides, workers = _parse(args)
    from seglab.config.convert import export_config

    started = time.perf_counter()
    cfg = export_config(overrides)
    check_data_roots(cfg)
    splits = _splits(cfg)
    total = sum(len(s.entries) for s in splits)
    _read_all(splits, workers, total)
    seconds = time.perf_counter() - started
    for split in splits:
        print(describe(split))
    print(*_across_splits(splits), sep="\n")
    train = next((s for s in splits if s.key.startswith("train_dataloader")), None)
    if train is not None:
        print(suggested_weights(cfg, train))
    print(
        f"read {total} images and their labels of {len(splits)} splits in {seconds:.1f} s "
        f"with {workers} processes"
    )
    for split in splits:  # what would stop training: the first file's line, as training's
        _judge(split)


def _parse(args: Sequence[str]) -> tuple[list[str], int]:
    workers = os.cpu_count() or 1
    overrides = []
    for arg in args:
        if arg.startswith("workers="):
            value = arg.split("=", 1)[1]
            if not value.isdigit() or int(value) < 1:
                raise ConfigError(f"workers={value}: expected a number of processes, 1 or more")
            workers = int(value)
        else:
            overrides.append(arg)
    return overrides, workers


def _splits(cfg: Any) -> list[Split]:
    """Every split the dataloaders read, once each, its file list checked as training does."""

    def unlisted(key: str, dataset: dict) -> None:
        print(f"{key}: {dataset.get('type')} cannot be listed here; not checked")

    return [Split(*split) for split in listed_splits(cfg, unlisted)]


def _read_all(splits: list[Split], workers: int, total: int) -> None:
    progress = Progress(total)
    entries = [(split, entry) for split in splits for entry in split.entries]
    if workers == 1:
        records = (read_record(entry) for _, entry in entries)
        for (split, _), record in zip(entries, records, strict=True):
            split.records.append(record)
            progress.advance()
    else:
        with ProcessPoolExecutor(workers) as pool:
            records = pool.map(read_record, [e for _, e in entries], chunksize=CHUNK)
            for (split, _), record in zip(entries, records, strict=True):
                split.records.append(record)
                progress.advance()
    progress.close()


class Progress:
    """A bar on stderr, redrawn at most ten times a second (and not at all off a terminal)."""

    WIDTH = 30

    def __init__(self, total: int) -> None:
        self.total, self.done, self.started = total, 0, time.perf_counter()
        self.shown = 0.0
        self.live = sys.stderr.isatty()

    def advance(self) -> None:
        self.done += 1
        now = time.perf_counter()
        if self.live and (now - self.shown > 0.1 or self.done == self.total):
            self.shown = now
            filled = self.WIDTH * self.done // max(self.total, 1)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            rate = self.done / max(now - self.started, 1e-9)
            sys.stderr.write(f"\r[{bar}] {self.done}/{self.total} files, {rate:.0f}/s")
            sys.stderr.flush()

    def close(self) -> None:
        if self.live:
            sys.stderr.write("\n")


def class_pixels(split: Split) -> tuple[np.ndarray, int]:
    """Pixels per class as training loads the labels (label map, reduce_zero_label), and the
    pixels it ignores."""
    ignore = getattr(split.instance, "ignore_index", 255)
    reduce_zero = reduces_zero_label(split.dataset)
    label_map = getattr(split.instance, "label_map", None) or {}
    counts = np.zeros(256, dtype=np.int64)
    for record in split.records:
        for value, pixels in (record.label.counts if record.label else {}).items():
            value = label_map.get(value, value)
            if reduce_zero:  # as mmseg's LoadAnnotations: 0 becomes 255, the rest one less
                value = 255 if value in (0, 255) else value - 1
            counts[min(value, 255)] += pixels
    ignored = int(counts[ignore]) if 0 <= ignore < 256 else 0
    return counts, ignored


def describe(split: Split) -> str:
    classes = dataset_classes(split.dataset) or ()
    records = [r for r in split.records if r.error is None]
    sizes = Counter(r.size for r in records)
    lines = [
        f"{split.key}: {len(split.entries)} images in "
        f"{split.instance.data_prefix.get('img_path')}, "
        f"{sum(r.label is not None for r in records)} labels"
    ]
    if sizes:
        common = ", ".join(f"{h}x{w} ({n})" for (h, w), n in sizes.most_common(3))
        more = f" and {len(sizes) - 3} other sizes" if len(sizes) > 3 else ""
        lines.append(f"  image sizes (height x width): {common}{more}")
    counts, ignored = class_pixels(split)
    labelled = counts.sum() - ignored
    if classes and counts.sum():
        shares = ", ".join(
            f"{name} {counts[i] / counts.sum():.1%}" for i, name in enumerate(classes)
        )
        lines.append(f"  label pixels per class: {shares}; ignored {ignored / counts.sum():.1%}")
        absent = [name for i, name in enumerate(classes) if not counts[i]]
        lines.append(f"  classes absent: {', '.join(absent) if absent else 'none'}")
    elif not labelled:
        lines.append("  no labelled pixels")
    unlabelled = [r.img_path for r in split.records if r.error is None and r.label is None]
    if unlabelled:
        lines.append(f"  images without labels: {len(unlabelled)}, e.g. {unlabelled[0]}")
    twins = duplicates(records)
    if twins:
        lines.append(
            f"  duplicate images: {len(twins)} with the same content as another, e.g. "
            f"{twins[0][0]} = {twins[0][1]}"
        )
    unusable = [r for r in split.records if r.error is not None]
    if unusable:
        lines.append(f"  files that cannot be used: {len(unusable)}, e.g. {unusable[0].error}")
    return "\n".join(lines)


def duplicates(records: list[FileRecord]) -> list[tuple[str, str]]:
    """(image, the earlier image with the same bytes) for each image seen before."""
    first: dict[str, str] = {}
    twins = []
    for record in records:
        if record.digest in first:
            twins.append((record.img_path, first[record.digest]))
        else:
            first[record.digest] = record.img_path
    return twins


def _across_splits(splits: list[Split]) -> list[str]:
    lines = []
    for i, split in enumerate(splits):
        digests = {r.digest: r.img_path for r in split.records if r.digest}
        for other in splits[i + 1 :]:
            shared = [(r.img_path, digests[r.digest]) for r in other.records if r.digest in digests]
            if shared:
                lines.append(
                    f"warning: {len(shared)} images of {other.key} are also in {split.key} "
                    f"(e.g. {shared[0][0]} = {shared[0][1]}): they would be scored on what "
                    "was learnt from them"
                )
    return lines


def median_frequency_weights(counts: np.ndarray, n: int) -> list[float] | None:
    """median(frequency) / frequency of each class (Eigen and Fergus, 2015); a class absent
    from the training labels gets the largest weight of the others."""
    frequency = counts[:n] / max(counts[:n].sum(), 1)
    present = frequency[frequency > 0]
    if present.size < 2:
        return None
    weights = np.where(frequency > 0, np.median(present) / np.maximum(frequency, 1e-12), 0)
    weights[frequency == 0] = weights.max()
    return [round(float(w), 3) for w in weights]


def suggested_weights(cfg: Any, split: Split) -> str:
    classes = dataset_classes(split.dataset) or ()
    counts, _ = class_pixels(split)
    weights = median_frequency_weights(counts, len(classes))
    if weights is None:
        return "class weights: fewer than two classes occur in the training labels; none"
    text = "[" + ",".join(f"{w:g}" for w in weights) + "]"
    keys = [
        loss_key
        for key, head in heads(cfg.get("model") or {})
        for loss_key, loss in losses(key, head)
        if head.get("num_classes") == len(classes)
        and "CrossEntropy" in str(loss.get("type"))
        and not loss.get("use_sigmoid")
    ]
    settings = " ".join(f"++{key}.class_weight={text}" for key in keys[:1]) or (
        f"class_weight={text} in the losses"
    )
    return (
        f"class weights (median frequency of {split.key}'s label pixels), for rare classes "
        f"to count more in the loss: {settings}"
    )


def _judge(split: Split) -> None:
    for record in split.records:
        if isinstance(record.error, ColourLabel):
            raise colour_label_error(record.error, split.key, split.dataset, split.instance)
        if record.error is not None:
            raise record.error
    labels = [r.label for r in split.records if r.label is not None]
    judge_labels(split.key, split.dataset, split.instance, labels)
