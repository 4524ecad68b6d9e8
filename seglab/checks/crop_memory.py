"""Whether a training batch at the configured crop size fits in memory, checked before training.

The data preprocessor pads every crop to the full crop size, so memory grows with the crop, not
with the images: `dataset.crop_size=[4096,4096]` on 96-pixel images filled a 24 GiB machine and
died without a line in its log. The estimate is what the model keeps for its backward pass,
measured per input pixel on a small input, times the pixels of a batch, plus the weights, their
gradients and the optimizer's state. It leaves out what the backward pass allocates on top and
is compared with all the memory available, so only a batch clearly too large is refused.
"""

from __future__ import annotations

import copy
import os
import resource
import sys
from pathlib import Path

from mmengine.config import Config

from seglab.checks.data_files import leaf_datasets
from seglab.errors import ConfigError

GIB = 1 << 30
# Above what mmseg's models keep per input pixel for backward (measured: UPerNet-R50 4.9 KiB,
# PSPNet-R50-D8 5.6, SegFormer-B0 1.9, the demo's tiny UPerNet 0.4): a batch that fits at this
# rate fits, and the model is not measured.
SCREEN_BYTES_PER_PIXEL = 32 * 1024
PROBE_SIZE = 64  # height and width of the input the model is measured on
PROBE_BATCH = 2  # BatchNorm in training mode needs more than one value per channel
WEIGHT_COPIES = 4  # weights, gradients and up to two optimizer states (AdamW)
FAR_BEYOND = 4  # a crop side this many times the images' side is mostly padding
CROP_WARNING = 2  # a crop side over this many times the images' side is worth a warning


def check_crop_memory(cfg: Config, largest_image: tuple[int, int] | None = None) -> None:
    """Refuse a crop whose batch cannot fit in this machine's memory; warn, in one line, of a
    crop far beyond the images (`largest_image`: the largest sampled one, height and width)."""
    crop = train_crop_size(cfg)
    if crop is None:
        return
    batch = int(cfg.train_dataloader.get("batch_size") or 1)
    pixels = crop[0] * crop[1] * batch
    images = resized_size(cfg, largest_image)
    far = images is not None and all(c > FAR_BEYOND * i for c, i in zip(crop, images, strict=True))
    beyond = ""
    if far:
        beyond = f"the training images are at most {images[0]}x{images[1]} after resizing"
    memory = available_memory()
    if memory is not None and pixels * SCREEN_BYTES_PER_PIXEL > memory[0]:
        measured = measure_model(cfg.model)
        if measured is not None:
            per_pixel, weights = measured
            if cfg.get("optim_wrapper", {}).get("type") == "AmpOptimWrapper":
                per_pixel /= 2  # activations in half precision
            estimate = pixels * per_pixel + WEIGHT_COPIES * weights
            if estimate > memory[0]:
                raise ConfigError(
                    f"dataset.crop_size={list(crop)}: a training batch needs an estimated "
                    f"{estimate / GIB:.1f} GiB (train_dataloader.batch_size={batch} crops of "
                    f"{crop[0]}x{crop[1]} pixels at {per_pixel / 1024:.1f} KiB per pixel, "
                    f"measured on this model, and its weights and optimizer state), more than "
                    f"the {memory[0] / GIB:.1f} GiB of {memory[1]}"
                    + (f"; {beyond}" if beyond else "")
                    + "; lower dataset.crop_size or train_dataloader.batch_size"
                )
    warn_if_crop_beyond_images(crop, largest_image)


def warn_if_crop_beyond_images(crop: tuple[int, int], image: tuple[int, int] | None) -> None:
    """One line where a crop side is over CROP_WARNING times the largest sampled image's: a
    step then works on padding, or on images upscaled (dataset.scale) to fill it."""
    if image is None or not any(c > CROP_WARNING * i for c, i in zip(crop, image, strict=True)):
        return
    print(
        f"seglab: warning: dataset.crop_size={list(crop)}: over {CROP_WARNING}x the training "
        f"images (at most {image[0]}x{image[1]}), so each crop is mostly padding or upscaled "
        f"pixels, {crop[0] * crop[1] / (image[0] * image[1]):.0f}x an image's pixels a step; "
        "expected a crop about their size (dataset=custom takes it from the images unless "
        "dataset.crop_size is set)",
        file=sys.stderr,
        flush=True,
    )


def _train_pipeline(cfg: Config) -> list[dict]:
    for key, dataset in leaf_datasets(cfg):
        if key.startswith("train_dataloader"):
            return list(dataset.get("pipeline") or [])
    return []


def train_crop_size(cfg: Config) -> tuple[int, int] | None:
    """(height, width) of a training batch's images: the data preprocessor pads to it, else
    RandomCrop's size."""
    size = (cfg.get("model", {}).get("data_preprocessor") or {}).get("size")
    if size is None:
        crops = [t for t in _train_pipeline(cfg) if t.get("type") == "RandomCrop"]
        size = crops[0].get("crop_size") if crops else None
    if not isinstance(size, (list, tuple)) or len(size) != 2:
        return None
    return int(size[0]), int(size[1])


def resized_size(cfg: Config, image: tuple[int, int] | None) -> tuple[int, int] | None:
    """The largest (height, width) the train pipeline's resizing makes of `image`; None if a
    resize seglab does not model here is in it."""
    if image is None:
        return None
    height, width = image
    for transform in _train_pipeline(cfg):
        kind = transform.get("type", "")
        scale = transform.get("scale")
        if kind in ("Resize", "RandomResize") and scale is not None:
            scale = (scale, scale) if isinstance(scale, (int, float)) else tuple(scale)
            if not all(isinstance(s, (int, float)) for s in scale):
                return None  # a list of scales to choose from
            ratio = max(transform.get("ratio_range") or (1.0,)) if kind == "RandomResize" else 1
            target = (scale[0] * ratio, scale[1] * ratio)  # (width, height), as mmcv's
            if transform.get("keep_ratio", False):  # mmcv.rescale_size
                factor = min(max(target) / max(height, width), min(target) / min(height, width))
                height, width = height * factor, width * factor
            else:
                width, height = target
        elif "Resize" in kind or "Rescale" in kind:
            return None
    return round(height), round(width)


def available_memory() -> tuple[int, str] | None:
    """(bytes, where) the training process can use: the GPU's free memory, else its share of
    the available RAM, within the process's address-space limit (`ulimit -v`) and its
    container's memory limit."""
    import torch

    if torch.cuda.is_available():
        device = int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count()
        free, _ = torch.cuda.mem_get_info(device)
        return free, f"free memory on GPU {device} ({torch.cuda.get_device_name(device)})"
    try:
        import psutil
    except ImportError:
        return None
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", 1))  # torchrun's processes share it
    share = f" (shared by {processes} processes)" if processes > 1 else ""
    limits = [(psutil.virtual_memory().available // processes, f"available RAM{share}")]
    address_space = resource.getrlimit(resource.RLIMIT_AS)[0]
    if address_space != resource.RLIM_INFINITY:
        limits.append((address_space, "address space this process may use (ulimit -v)"))
    container = _cgroup_memory_left()
    if container is not None:
        limits.append((container // processes, f"memory left in this container's limit{share}"))
    return min(limits)


def _cgroup_memory_left() -> int | None:
    """What the cgroup (v2) limit leaves; containers often hold less than the host has."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(int(limit) - used, 0)


def measure_model(model_cfg: dict) -> tuple[float, int] | None:
    """(bytes kept for backward per input pixel, bytes of weights) of the model, from one
    training forward on a small random input; None if it cannot run here."""
    import torch
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import DefaultScope
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    size = PROBE_SIZE
    kept: dict[int, int] = {}
    try:
        # the Runner seeds the generators later; the measurement leaves them as they were
        with torch.random.fork_rng(devices=[]), DefaultScope.overwrite_default_scope("mmseg"):
            model = revert_sync_batchnorm(MODELS.build(copy.deepcopy(model_cfg))).train()
            weights = {p.untyped_storage().data_ptr() for p in model.parameters()}

            def keep(tensor: torch.Tensor) -> torch.Tensor:
                storage = tensor.untyped_storage()
                if storage.data_ptr() not in weights:
                    kept[storage.data_ptr()] = storage.nbytes()
                return tensor

            samples = [
                SegDataSample(
                    gt_sem_seg=PixelData(data=torch.zeros(1, size, size, dtype=torch.long)),
                    metainfo=dict(img_shape=(size, size), pad_shape=(size, size)),
                )
                for _ in range(PROBE_BATCH)
            ]
            with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
                model.loss(torch.rand(PROBE_BATCH, 3, size, size), samples)
    except Exception:  # noqa: BLE001  (a model that cannot run a CPU probe: the check is skipped)
        return None
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return sum(kept.values()) / (PROBE_BATCH * size * size), weight_bytes
