"""Tiny stand-ins for public data sets' downloads, in each one's own format (names, folders,
archives, image formats, label encodings), written by code: a few images of 64x32 pixels (512
for Potsdam and Vaihingen, whose converters cut 512-pixel tiles) and their labels. Only the
counts that a converter asserts are kept (CHASE_DB1's 84 files, HRF's 15 per archive, STARE's
20); what it cannot check is cut down to a few images per split.

Each builder writes SOURCE under `root` and returns it; BUILDERS maps `seglab data prepare`
names to them.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

W, H = 64, 32


def bands(values: Sequence[int], shape: tuple[int, int] = (H, W), shift: int = 0) -> np.ndarray:
    """A label map of vertical bands cycling through `values` (uint8)."""
    height, width = shape
    columns = (np.arange(width) * len(values) // width + shift) % len(values)
    return np.tile(np.asarray(values, np.uint8)[columns], (height, 1))


def picture(label: np.ndarray, seed: int = 0) -> np.ndarray:
    """An RGB image whose colour follows the label's class, with a little noise."""
    rng = np.random.default_rng(seed)
    colours = np.random.default_rng(7).integers(40, 216, size=(256, 3))
    noise = rng.integers(-8, 9, size=(*label.shape, 3))
    return np.clip(colours[label] + noise, 0, 255).astype(np.uint8)


def encoded(array: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_zip(path: Path, members: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def write_tar(path: Path, members: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


# Cityscapes: leftImg8bit/SPLIT/CITY/ID_leftImg8bit.png and gtFine/SPLIT/CITY/ID_gtFine_*
# (the converter reads the polygons); every pixel in a polygon of a trainId class
CITYSCAPES = {
    "train": ["aachen_000000_000019", "aachen_000001_000019", "bochum_000000_000313"],
    "val": ["frankfurt_000000_000294", "lindau_000000_000019"],
    "test": ["berlin_000000_000019"],
}
# (label, trainId, rows) drawn top to bottom, then a car on the road
CITYSCAPES_POLYGONS = [("sky", 10, (0, 10)), ("building", 2, (10, 18)), ("road", 0, (18, 31))]


def cityscapes_polygons(i: int) -> dict:
    objects = [
        {"label": label, "polygon": [[0, top], [W - 1, top], [W - 1, bottom], [0, bottom]]}
        for label, _, (top, bottom) in CITYSCAPES_POLYGONS
    ]
    left = 8 + 10 * i
    car = [[left, 20], [left + 16, 20], [left + 16, 28], [left, 28]]
    objects.append({"label": "car", "polygon": car})
    objects.append({"label": "ego vehicle", "polygon": [[0, 30], [W - 1, 30], [W - 1, 31]]})
    return {"imgHeight": H, "imgWidth": W, "objects": objects}


def cityscapes(root: Path, zipped: bool = False) -> Path:
    """Cityscapes as its two folders, or (`zipped`) as the two zips they come in."""
    files: dict[str, dict[str, bytes]] = {"gtFine": {}, "leftImg8bit": {}}
    for split, ids in CITYSCAPES.items():
        for i, image_id in enumerate(ids):
            city = image_id.split("_")[0]
            label = np.full((H, W), 10, np.uint8)
            files["leftImg8bit"][f"leftImg8bit/{split}/{city}/{image_id}_leftImg8bit.png"] = (
                encoded(picture(label + i, i), "PNG")
            )
            polygons = json.dumps(cityscapes_polygons(i)).encode()
            files["gtFine"][f"gtFine/{split}/{city}/{image_id}_gtFine_polygons.json"] = polygons
    for part, members in files.items():
        if zipped:
            write_zip(root / f"{part}_trainvaltest.zip", {"license.txt": b"tiny", **members})
        else:
            for name, data in members.items():
                write(root / name, data)
    return root


# PASCAL VOC 2012 and SBD: VOC's train/val segmentation lists, SBD's own train/val lists of
# .mat labels; the converter's lists are VOC train plus SBD minus VOC val (trainaug), and SBD
# minus both (aug)
VOC_TRAIN, VOC_VAL = ["2007_000032", "2007_000039"], ["2007_000033"]
SBD_TRAIN, SBD_VAL = ["2007_000032", "2008_000002", "2008_000003"], ["2007_000033", "2008_000007"]
VOC_CLASSES = [0, 15, 7, 12]  # background, person, car, dog


def voc_label(i: int) -> np.ndarray:
    label = bands(VOC_CLASSES, shift=i)
    label[:, W // 2] = 255  # a one-pixel boundary, as VOC draws them
    return label


def pascal_voc12_aug(root: Path) -> Path:
    """VOCdevkit/VOC2012 (JPEGImages, SegmentationClass, ImageSets/Segmentation, Annotations)
    and benchmark_RELEASE/dataset (cls/*.mat, img, train.txt, val.txt)."""
    from scipy.io import savemat

    voc = root / "VOCdevkit" / "VOC2012"
    names = sorted({*VOC_TRAIN, *VOC_VAL, *SBD_TRAIN, *SBD_VAL})
    palette = np.random.default_rng(1).integers(0, 256, size=768).astype(np.uint8).tolist()
    for i, name in enumerate(names):
        label = voc_label(i)
        image = encoded(picture(np.where(label == 255, 0, label), i), "JPEG")
        write(voc / "JPEGImages" / f"{name}.jpg", image)
        write(voc / "Annotations" / f"{name}.xml", f"<annotation>{name}</annotation>".encode())
        if name in VOC_TRAIN + VOC_VAL:
            mask = Image.fromarray(label, "P")
            mask.putpalette(palette)
            write(voc / "SegmentationClass" / f"{name}.png", _saved(mask))
        if name in SBD_TRAIN + SBD_VAL:
            sbd = root / "benchmark_RELEASE" / "dataset"
            (sbd / "cls").mkdir(parents=True, exist_ok=True)
            segmentation = np.where(label == 255, 0, label)
            present = np.unique(segmentation[segmentation > 0]).astype(np.uint8)
            savemat(
                sbd / "cls" / f"{name}.mat",
                {"GTcls": {"Segmentation": segmentation, "CategoriesPresent": present}},
            )
            write(sbd / "img" / f"{name}.jpg", image)
    lists = voc / "ImageSets" / "Segmentation"
    for split, split_names in (("train", VOC_TRAIN), ("val", VOC_VAL)):
        write(lists / f"{split}.txt", "".join(f"{n}\n" for n in split_names).encode())
    write(lists / "trainval.txt", "".join(f"{n}\n" for n in VOC_TRAIN + VOC_VAL).encode())
    for split, split_names in (("train", SBD_TRAIN), ("val", SBD_VAL)):
        text = "".join(f"{n}\n" for n in split_names).encode()
        write(root / "benchmark_RELEASE" / "dataset" / f"{split}.txt", text)
    return root


def _saved(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


# LoveDA: Train.zip, Val.zip, Test.zip of SPLIT/{Rural,Urban}/images_png|masks_png/N.png;
# masks hold 1..7 (classes) and a little 0 (no data)
LOVEDA = {"Train": [0, 1, 2, 3], "Val": [4, 5], "Test": [6, 7]}


def loveda(root: Path) -> Path:
    for split, numbers in LOVEDA.items():
        members = {}
        for i, number in enumerate(numbers):
            area = ("Rural", "Urban")[i % 2]
            label = bands(range(1, 8), shift=i)
            label[0, :4] = 0
            members[f"{split}/{area}/images_png/{number}.png"] = encoded(picture(label, i), "PNG")
            if split != "Test":
                members[f"{split}/{area}/masks_png/{number}.png"] = encoded(label, "PNG")
        write_zip(root / f"{split}.zip", members)
    return root


def vessels(i: int) -> np.ndarray:
    """A retina's vessel mask as the downloads keep it: 255 on 0."""
    return bands([0, 0, 255, 0], shift=i) if i % 2 else bands([0, 255, 0], shift=i)


# DRIVE: training.zip (training/images/NN_training.tif, training/1st_manual/NN_manual1.gif,
# training/mask/NN_training_mask.gif) and test.zip (test/..., 1st_manual and 2nd_manual)
def drive(root: Path) -> Path:
    for split, numbers in (("training", [21, 22, 23]), ("test", [1, 2])):
        members = {}
        for i, number in enumerate(numbers):
            n = f"{number:02d}"
            members[f"{split}/images/{n}_{split}.tif"] = encoded(picture(vessels(i), i), "TIFF")
            members[f"{split}/1st_manual/{n}_manual1.gif"] = encoded(vessels(i), "GIF")
            if split == "test":
                members[f"{split}/2nd_manual/{n}_manual2.gif"] = encoded(vessels(i + 1), "GIF")
            field = np.full((H, W), 255, np.uint8)
            members[f"{split}/mask/{n}_{split}_mask.gif"] = encoded(field, "GIF")
        write_zip(root / f"{split}.zip", members)
    return root


# CHASE_DB1: CHASEDB1.zip of 28 images Image_NN{L,R}.jpg with two labels each (_1stHO.png,
# _2ndHO.png), 84 files (the converter asserts it; its first 60 by name train)
def chase_db1(root: Path) -> Path:
    members = {}
    for i in range(28):
        name = f"Image_{i // 2 + 1:02d}{'LR'[i % 2]}"
        members[f"{name}.jpg"] = encoded(picture(vessels(i), i), "JPEG")
        members[f"{name}_1stHO.png"] = encoded(vessels(i), "PNG")
        members[f"{name}_2ndHO.png"] = encoded(vessels(i + 1), "PNG")
    write_zip(root / "CHASEDB1.zip", members)
    return root


# HRF: three zips of 15 images (NN_h.jpg, NN_g.jpg, NN_dr.jpg) and three of their labels
# (NN_h.tif, ...), files at the archive's top (the converter asserts 15 and trains on 5 each)
def hrf(root: Path) -> Path:
    for group, tag in (("healthy", "h"), ("glaucoma", "g"), ("diabetic_retinopathy", "dr")):
        images, labels = {}, {}
        for i in range(15):
            images[f"{i + 1:02d}_{tag}.jpg"] = encoded(picture(vessels(i), i), "JPEG")
            labels[f"{i + 1:02d}_{tag}.tif"] = encoded(vessels(i), "TIFF")
        write_zip(root / f"{group}.zip", images)
        write_zip(root / f"{group}_manualsegm.zip", labels)
    return root


# STARE: three tars of 20 gzipped PPMs each: imNNNN.ppm.gz, imNNNN.ah.ppm.gz, imNNNN.vk.ppm.gz
STARE = [1, 2, 3, 4, 5, 44, 77, 81, 82, 139, 162, 163, 235, 236, 239, 240, 255, 291, 319, 324]


def stare(root: Path) -> Path:
    parts: dict[str, dict[str, bytes]] = {"stare-images": {}, "labels-ah": {}, "labels-vk": {}}
    for i, number in enumerate(STARE):
        name = f"im{number:04d}"
        mask = vessels(i)
        parts["stare-images"][f"{name}.ppm.gz"] = gzip.compress(encoded(picture(mask, i), "PPM"))
        for tag, shift in (("ah", 0), ("vk", 1)):
            rgb = np.repeat(vessels(i + shift)[..., None], 3, axis=2)
            parts[f"labels-{tag}"][f"{name}.{tag}.ppm.gz"] = gzip.compress(encoded(rgb, "PPM"))
    for part, members in parts.items():
        write_tar(root / f"{part}.tar", members)
    return root


# ISPRS Potsdam and Vaihingen: 512-pixel tiles (the converters cut 512x512 windows) of one
# training and one validation area, labels as the data set's colours
ISPRS_COLOURS = [[255, 255, 255], [0, 0, 255], [0, 255, 255], [0, 255, 0], [255, 255, 0]]
ISPRS_COLOURS.append([255, 0, 0])


def isprs_tile(i: int) -> tuple[bytes, bytes]:
    index = bands(range(6), shape=(512, 512), shift=i)
    colours = np.asarray(ISPRS_COLOURS, np.uint8)[index]
    return encoded(picture(index, i), "TIFF"), encoded(colours, "TIFF")


def potsdam(root: Path) -> Path:
    """2_Ortho_RGB.zip (a folder of top_potsdam_A_B_RGB.tif) and 5_Labels_all_noBoundary.zip
    (top_potsdam_A_B_label_noBoundary.tif); 2_10 trains, 2_13 validates."""
    images, labels = {}, {}
    for i, area in enumerate(["2_10", "2_13"]):
        image, label = isprs_tile(i)
        images[f"2_Ortho_RGB/top_potsdam_{area}_RGB.tif"] = image
        labels[f"top_potsdam_{area}_label_noBoundary.tif"] = label
    write_zip(root / "2_Ortho_RGB.zip", images)
    write_zip(root / "5_Labels_all_noBoundary.zip", labels)
    (root / "1_DSM.zip").write_bytes(b"not read")  # another download beside them
    return root


def vaihingen(root: Path) -> Path:
    """ISPRS_semantic_labeling_Vaihingen.zip (top/top_mosaic_09cm_areaN.tif) and its
    ..._ground_truth_eroded_COMPLETE.zip (top_mosaic_09cm_areaN_noBoundary.tif); area1 trains,
    area6 validates."""
    images, labels = {}, {}
    for i, area in enumerate(["area1", "area6"]):
        image, label = isprs_tile(i)
        images[f"top/top_mosaic_09cm_{area}.tif"] = image
        labels[f"top_mosaic_09cm_{area}_noBoundary.tif"] = label
    write_zip(root / "ISPRS_semantic_labeling_Vaihingen.zip", images)
    write_zip(root / "ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE.zip", labels)
    return root


# iSAID: SPLIT/images/part1.zip (DOTA's images/PNNNN.png) and SPLIT/Semantic_masks/images.zip
# (images/PNNNN_instance_color_RGB.png, classes as colours); the converter pads each to an
# 896-pixel patch
ISAID_COLOURS = [[0, 0, 0], [0, 0, 63], [0, 63, 63], [0, 63, 0], [0, 0, 127]]


def isaid(root: Path) -> Path:
    for split, numbers in (("train", [0, 1]), ("val", [3]), ("test", [6])):
        images, masks = {}, {}
        for i, number in enumerate(numbers):
            index = bands(range(len(ISAID_COLOURS)), shift=i)
            images[f"images/P{number:04d}.png"] = encoded(picture(index, i), "PNG")
            colours = np.asarray(ISAID_COLOURS, np.uint8)[index]
            masks[f"images/P{number:04d}_instance_color_RGB.png"] = encoded(colours, "PNG")
        write_zip(root / split / "images" / "part1.zip", images)
        if split != "test":
            write_zip(root / split / "Semantic_masks" / "images.zip", masks)
    return root


# COCO-Stuff 10k: images/NAME.jpg, annotations/NAME.mat (`S`: class ids 1..182, 0 unlabelled),
# imageLists/train.txt and test.txt
COCO_10K = {"train": [77, 133, 164], "test": [1987, 2102]}
COCO_10K_IDS = [1, 3, 89, 182]


def coco_stuff10k(root: Path) -> Path:
    from scipy.io import savemat

    for split, numbers in COCO_10K.items():
        names = [f"COCO_train2014_{n:012d}" for n in numbers]
        for i, name in enumerate(names):
            ids = bands(COCO_10K_IDS, shift=i)
            ids[:2, :2] = 0
            write(root / "images" / f"{name}.jpg", encoded(picture(ids, i), "JPEG"))
            (root / "annotations").mkdir(parents=True, exist_ok=True)
            savemat(root / "annotations" / f"{name}.mat", {"S": ids.astype(np.uint16)})
        write(root / "imageLists" / f"{split}.txt", "".join(f"{n}\n" for n in names).encode())
    return root


# COCO-Stuff 164k: images/train2017|val2017/N.jpg and annotations/train2017|val2017/N.png
# (stuffthingmaps: class ids 0..181, 255 unlabelled)
COCO_164K = {"train2017": [9, 25, 30], "val2017": [139, 285]}
COCO_164K_IDS = [0, 2, 89, 181]


def coco_stuff164k(root: Path) -> Path:
    for split, numbers in COCO_164K.items():
        for i, number in enumerate(numbers):
            ids = bands(COCO_164K_IDS, shift=i)
            ids[:2, :2] = 255
            write(root / "images" / split / f"{number:012d}.jpg", encoded(picture(ids, i), "JPEG"))
            write(root / "annotations" / split / f"{number:012d}.png", encoded(ids, "PNG"))
    return root


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "cityscapes": cityscapes,
    "pascal_voc12_aug": pascal_voc12_aug,
    "loveda": loveda,
    "drive": drive,
    "chase_db1": chase_db1,
    "hrf": hrf,
    "stare": stare,
    "potsdam": potsdam,
    "vaihingen": vaihingen,
    "coco-stuff10k": coco_stuff10k,
    "coco-stuff164k": coco_stuff164k,
    "isaid": isaid,
}
