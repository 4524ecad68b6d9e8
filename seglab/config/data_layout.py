"""What a user's own image folder says about its data: the file endings and the image size.

`dataset=custom` takes its `img_suffix`, `seg_map_suffix`, `crop_size` and `scale` from these
functions (as OmegaConf resolvers, so `--cfg job --resolve` and the exported config.py show the
values found) unless the user sets them. ADE20K's values (`.jpg`, 512x512 crops of images
resized to 2048x512) made a folder of `.png` images an empty data set, and upscaled 96-pixel
images to 512 pixels and more, many times the work their own size needs.
Where the folder cannot tell (missing, empty, several kinds of image), each returns the default
it is given and the checks before training (seglab/checks/data_files.py) say what is wrong.
Sizes are ListConfigs: OmegaConf.resolve (`--resolve`) writes a resolver's value back into its
node, which cannot hold a plain list.
"""

from __future__ import annotations

import os
import statistics
from collections import Counter

from omegaconf import ListConfig
from PIL import Image

# endings of the image files mmcv and PIL read; anything else in a folder (a README, a
# thumbnail database) is not a candidate
IMAGE_ENDINGS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")
# ADE20K's crop: the size mmseg's models and batch sizes are tuned for, not exceeded by default
MAX_CROP = 512
# (long, short) side: Cityscapes' scale, the largest in mmseg's data sets; larger images are
# resized down to it rather than trained and tested at full size
MAX_SCALE = (2048, 1024)
SIZES_READ = 16  # image headers read to find the size; spread over the folder


def image_files(folder: str) -> list[str]:
    """Image files under `folder` (recursively, as mmseg lists them), relative and sorted."""
    found = []
    for parent, _dirs, names in os.walk(folder):
        relative = os.path.relpath(parent, folder)
        for name in names:
            if name.lower().endswith(IMAGE_ENDINGS):
                found.append(name if relative == "." else os.path.join(relative, name))
    return sorted(found)


def endings(folder: str) -> Counter:
    """How many image files under `folder` end in each extension, as written (`.PNG` apart)."""
    return Counter(os.path.splitext(name)[1] for name in image_files(folder))


def describe_endings(folder: str) -> str:
    """`4 '.png' files` (most common first), or '' for a folder that holds no image."""
    counts = endings(folder).most_common()
    return ", ".join(f"{n} {ending!r} file{'s' if n > 1 else ''}" for ending, n in counts)


def image_suffix(data_root: str, folder: str, default: str) -> str:
    """The one extension of the images in `data_root/folder`, else `default`."""
    counts = endings(os.path.join(data_root, folder))
    return next(iter(counts)) if len(counts) == 1 else default


def label_suffix(
    data_root: str, image_folder: str, img_suffix: str, label_folder: str, default: str
) -> str:
    """The ending that turns each image's name into its label's (`.png`, or `_mask.png` for
    `a.jpg` and `a_mask.png`) when every label shares one, else `default`."""
    stems = {
        name[: -len(img_suffix)]
        for name in image_files(os.path.join(data_root, image_folder))
        if name.endswith(img_suffix)
    }
    found = {
        _after_stem(name, stems) for name in image_files(os.path.join(data_root, label_folder))
    }
    return found.pop() if len(found) == 1 and None not in found else default


def _after_stem(name: str, stems: set[str]) -> str | None:
    """What follows the longest image name that `name` starts with, cut at `.`, `_` or `-`."""
    for cut in range(len(name) - 1, 0, -1):
        if name[cut] in "._-" and name[:cut] in stems:
            return name[cut:]
    return None


def image_size(data_root: str, folder: str, suffix: str) -> tuple[int, int] | None:
    """The median (height, width) of up to SIZES_READ images ending in `suffix`, from their
    headers; None where none can be read."""
    root = os.path.join(data_root, folder)
    names = [n for n in image_files(root) if n.endswith(suffix)]
    sizes = []
    for name in names[:: max(1, len(names) // SIZES_READ)][:SIZES_READ]:
        try:
            with Image.open(os.path.join(root, name)) as image:
                sizes.append(image.size[::-1])
        except (OSError, Image.DecompressionBombError):
            continue  # named by the checks before training
    if not sizes:
        return None
    return statistics.median_low(h for h, _ in sizes), statistics.median_low(w for _, w in sizes)


def _scaled(size: tuple[int, int]) -> tuple[int, int]:
    """`size` (height, width) resized down, keeping its ratio, to fit MAX_SCALE."""
    long, short = max(size), min(size)
    factor = min(1.0, MAX_SCALE[0] / long, MAX_SCALE[1] / short)
    return round(size[0] * factor), round(size[1] * factor)


def image_scale(data_root: str, folder: str, suffix: str, *default: int) -> ListConfig:
    """`dataset.scale` (long, short side, as mmcv's keep-ratio resize reads it): the images' own
    size, so that only `ratio_range` resizes them, at most MAX_SCALE."""
    size = image_size(data_root, folder, suffix)
    if size is None:
        return ListConfig(list(default))
    height, width = _scaled(size)
    return ListConfig([max(height, width), min(height, width)])


def image_crop(data_root: str, folder: str, suffix: str, *default: int) -> ListConfig:
    """`dataset.crop_size` (height, width): the images' size at `image_scale`, at most MAX_CROP
    a side, so a crop is not mostly padding."""
    size = image_size(data_root, folder, suffix)
    if size is None:
        return ListConfig(list(default))
    return ListConfig([min(MAX_CROP, side) for side in _scaled(size)])
