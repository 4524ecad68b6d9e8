"""What `seglab data prepare` runs for each data set: the mmseg converter script, the downloads
it reads from SOURCE, its arguments and the packages it imports.

Converters that read archives get SOURCE's files as they are (they only read them). Those that
write beside their inputs (cityscapes.py writes each label beside its polygons, voc_aug.py its
split lists into the VOC folder) get a copy in `OUT.partial` (`stage`). Converters that take
every archive of a folder (potsdam.py, vaihingen.py) get a folder holding links to the ones
they need, so that another archive beside them (an IRRG or DSM download) is not read as well.
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from seglab.errors import ConfigError


@dataclass(frozen=True)
class Work:
    source: Path  # the downloads, never changed
    partial: Path  # OUT.partial: the converter's output
    scratch: Path  # the converter's temporary files, removed before OUT.partial is renamed
    workers: int


@dataclass(frozen=True)
class Recipe:
    converter: str  # tools/dataset_converters/NAME in the installed mmsegmentation
    downloads: str  # what SOURCE holds, as the data set's site names it
    needs: tuple[str, ...]  # paths under SOURCE, each with its alternatives: "a|b"
    args: Callable[[Work], list[str]]
    packages: dict[str, str]  # the modules the converter imports beyond seglab's: pip names
    stage: Callable[[Work], None] | None = None  # before the converter runs
    after: Callable[[Work], str | None] | None = None  # a warning on the result, if any
    optimize: bool = False  # run with python -O: skip upstream's asserts on full-size counts


def missing_downloads(recipe: Recipe, source: Path) -> list[str]:
    return [n for n in recipe.needs if find(source, n) is None]


def find(source: Path, need: str) -> Path | None:
    """The first of the alternatives `a|b` that exists under SOURCE."""
    return next((source / p for p in need.split("|") if (source / p).exists()), None)


def _out(work: Work, tmp: bool = True) -> list[str]:
    return [*(["--tmp_dir", str(work.scratch)] if tmp else []), "-o", str(work.partial)]


def _files(*names: str) -> Callable[[Work], list[str]]:
    """The converter's arguments: SOURCE's files NAMES in order, then where to write."""
    return lambda work: [*(str(work.source / n) for n in names), *_out(work)]


# Cityscapes: gtFine and leftImg8bit, as folders or as the zips they come in; the converter
# writes *_gtFine_labelTrainIds.png beside each *_gtFine_polygons.json and train/val/test.txt.
CITYSCAPES_PARTS = ("gtFine", "leftImg8bit")


def _stage_cityscapes(work: Work) -> None:
    for part in CITYSCAPES_PARTS:
        found = find(work.source, f"{part}|{part}_trainvaltest.zip")
        if found.is_dir():
            shutil.copytree(found, work.partial / part)
            continue
        with zipfile.ZipFile(found) as archive:
            members = [m for m in archive.namelist() if m.startswith(f"{part}/")]
            archive.extractall(work.partial, members)


def _cityscapes_args(work: Work) -> list[str]:
    partial = str(work.partial)
    return [partial, "--gt-dir", "gtFine", "--nproc", str(work.workers), "-o", partial]


# PASCAL VOC 2012 with SBD's labels: the folders a download extracts to. What the dataloaders
# read is copied (images, labels, split lists); the converter writes SegmentationClassAug and
# the split lists aug.txt and trainaug.txt.
VOC = "VOCdevkit/VOC2012|VOC2012"
SBD = "benchmark_RELEASE|VOCaug|VOCdevkit/VOCaug"
VOC_READ = ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation")
SBD_READ = ("dataset/cls", "dataset/train.txt", "dataset/val.txt")
VOC_AUG_TRAIN = 10582  # trainaug.txt of the full downloads (voc_aug.py's assert)


def _stage_voc(work: Work) -> None:
    voc, sbd = find(work.source, VOC), find(work.source, SBD)
    missing = [str(voc / p) for p in VOC_READ if not (voc / p).is_dir()]
    missing += [str(sbd / p) for p in SBD_READ if not (sbd / p).exists()]
    if missing:
        raise ConfigError(
            f"{work.source}: no {', '.join(missing)}; expected VOC2012's and SBD's folders as "
            "their downloads extract"
        )
    for part in VOC_READ:
        shutil.copytree(voc / part, work.partial / part)
    devkit = work.scratch / "devkit"
    devkit.mkdir()
    (devkit / "VOC2012").symlink_to(work.partial, target_is_directory=True)


def _voc_args(work: Work) -> list[str]:
    aug = work.partial / "SegmentationClassAug"
    sbd = find(work.source, SBD)
    return [str(work.scratch / "devkit"), str(sbd), "--nproc", str(work.workers), "-o", str(aug)]


def _voc_counts(work: Work) -> str | None:
    lists = work.partial / "ImageSets" / "Segmentation"
    count = len((lists / "trainaug.txt").read_text().split())
    if count == VOC_AUG_TRAIN:
        return None
    return (
        f"trainaug.txt lists {count} images, the full VOC2012 and SBD downloads {VOC_AUG_TRAIN}: "
        "a download is incomplete or a subset"
    )


# Potsdam and Vaihingen: the converter reads every zip of its folder and tells labels from
# images by a word in the whole path; given a folder of links to the two it needs.
def _linked(names: tuple[str, ...], word: str) -> Callable[[Work], None]:
    def stage(work: Work) -> None:
        if word in str(work.scratch):
            out = str(work.partial).removesuffix(".partial")
            raise ConfigError(
                f"out={out}: holds '{word}', by which the converter tells labels from images "
                "in a path; expected an out= without it"
            )
        inputs = work.scratch / "inputs"
        inputs.mkdir()
        for name in names:
            (inputs / name).symlink_to(work.source / name)

    return stage


def _linked_args(work: Work) -> list[str]:
    return [str(work.scratch / "inputs"), *_out(work)]


HRF = ("healthy", "glaucoma", "diabetic_retinopathy")
HRF_ZIPS = tuple(f"{n}{part}.zip" for n in HRF for part in ("", "_manualsegm"))
STARE = ("stare-images.tar", "labels-ah.tar", "labels-vk.tar")
POTSDAM = ("2_Ortho_RGB.zip", "5_Labels_all_noBoundary.zip")
VAIHINGEN = (
    "ISPRS_semantic_labeling_Vaihingen.zip",
    "ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE.zip",
)
ISAID = tuple(
    f"{split}/{part}" for split in ("train", "val", "test") for part in ("images", "Semantic_masks")
)[:-1]  # the test split has no labels

# COCO-Stuff: the folders its downloads unzip to; the converters copy the images and write
# *_labelTrainIds.png, and assert the full counts (10000, 123287 images)
COCO_10K = ("images", "annotations", "imageLists/train.txt", "imageLists/test.txt")
COCO_164K = tuple(f"{p}/{s}" for p in ("images", "annotations") for s in ("train2017", "val2017"))


def _coco_args(work: Work) -> list[str]:
    return [str(work.source), "-o", str(work.partial), "--nproc", str(work.workers)]


def _coco_count(expected: int, count: Callable[[Work], int]) -> Callable[[Work], str | None]:
    def after(work: Work) -> str | None:
        found = count(work)
        if found == expected:
            return None
        return (
            f"{found} images converted, the full download {expected}: a download is "
            "incomplete or a subset"
        )

    return after


def _listed(work: Work) -> int:
    lists = [work.source / "imageLists" / f"{s}.txt" for s in ("train", "test")]
    return sum(len(path.read_text().split()) for path in lists)


def _labels_written(work: Work) -> int:
    return len(list((work.partial / "annotations").glob("*/*_labelTrainIds.png")))


RECIPES: dict[str, Recipe] = {
    "cityscapes": Recipe(
        "cityscapes.py",
        "gtFine/ and leftImg8bit/ (gtFine_trainvaltest.zip, leftImg8bit_trainvaltest.zip)",
        tuple(f"{p}|{p}_trainvaltest.zip" for p in CITYSCAPES_PARTS),
        _cityscapes_args,
        {"cityscapesscripts": "cityscapesscripts"},
        stage=_stage_cityscapes,
    ),
    "pascal_voc12_aug": Recipe(
        "voc_aug.py",
        "VOCdevkit/VOC2012/ (VOCtrainval_11-May-2012.tar) and benchmark_RELEASE/ (SBD's "
        "benchmark.tgz), extracted",
        (VOC, SBD),
        _voc_args,
        {"scipy": "scipy"},
        stage=_stage_voc,
        after=_voc_counts,
        optimize=True,
    ),
    "loveda": Recipe(
        "loveda.py",
        "Train.zip, Val.zip, Test.zip",
        ("Train.zip", "Val.zip", "Test.zip"),
        lambda work: [str(work.source), *_out(work)],
        {},
    ),
    "drive": Recipe(
        "drive.py",
        "training.zip, test.zip",
        ("training.zip", "test.zip"),
        _files("training.zip", "test.zip"),
        {},
    ),
    "chase_db1": Recipe(
        "chase_db1.py", "CHASEDB1.zip", ("CHASEDB1.zip",), _files("CHASEDB1.zip"), {}
    ),
    "hrf": Recipe("hrf.py", ", ".join(HRF_ZIPS), HRF_ZIPS, _files(*HRF_ZIPS), {}),
    "stare": Recipe("stare.py", ", ".join(STARE), STARE, _files(*STARE), {}),
    "potsdam": Recipe(
        "potsdam.py",
        ", ".join(POTSDAM),
        POTSDAM,
        _linked_args,
        {},
        stage=_linked(POTSDAM, "label"),
    ),
    "vaihingen": Recipe(
        "vaihingen.py",
        ", ".join(VAIHINGEN),
        VAIHINGEN,
        _linked_args,
        {},
        stage=_linked(VAIHINGEN, "noBoundary"),
    ),
    "coco-stuff10k": Recipe(
        "coco_stuff10k.py",
        "images/, annotations/ (*.mat), imageLists/ (cocostuff-10k-v1.1.zip, unzipped)",
        COCO_10K,
        _coco_args,
        {"scipy": "scipy"},
        after=_coco_count(10000, _listed),
        optimize=True,
    ),
    "coco-stuff164k": Recipe(
        "coco_stuff164k.py",
        "images/train2017|val2017 (train2017.zip, val2017.zip) and annotations/train2017|val2017 "
        "(stuffthingmaps_trainval2017.zip), unzipped",
        COCO_164K,
        _coco_args,
        {},
        after=_coco_count(123287, _labels_written),
        optimize=True,
    ),
    "isaid": Recipe(
        "isaid.py",
        "train/, val/, test/ with images/*.zip (DOTA's) and, but for test, Semantic_masks/*.zip",
        ISAID,
        lambda work: [str(work.source), *_out(work)],
        {},
    ),
}
