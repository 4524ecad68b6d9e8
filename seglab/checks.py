"""Checks of a converted config against the machine and the data, run before any training.

Each failure is a ConfigError whose one line names the key, the value and what was expected.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mmengine.config import Config

from seglab.crop_memory import check_crop_memory
from seglab.data_checks import check_data_files, dataset_classes, leaf_datasets
from seglab.errors import ConfigError
from seglab.requirements import AMP_DEVICES, check_requirements

URL_SCHEMES = ("http://", "https://", "open-mmlab://", "openmmlab://", "mmcls://", "torchvision://")


def check_before_training(cfg: Config, network_timeout: float = 3.0, amp: bool = False) -> None:
    """`amp`: seglab's amp=true made the optim_wrapper an AmpOptimWrapper; its need of a GPU is
    then named by that flag rather than by the config key the flag set."""
    if amp:
        check_amp_device(cfg)
    # packages, devices and compiled ops the config needs: before anything reads data
    check_requirements(cfg)
    check_launcher(cfg)
    check_class_counts(cfg)
    largest_image = check_data_files(cfg)
    check_weights_reachable(cfg, network_timeout)
    check_crop_memory(cfg, largest_image)


LAUNCHERS = ("none", "pytorch", "slurm", "mpi")


def check_launcher(cfg: Config) -> None:
    """mmengine reads the process's rank from its launcher's environment variables."""
    from seglab.distributed import TORCHRUN_VARIABLES, torchrun_world_size

    launcher = cfg.get("launcher", "none")
    if launcher not in LAUNCHERS:
        raise ConfigError(f"launcher={launcher!r}: expected one of {', '.join(LAUNCHERS)}")
    if launcher == "pytorch" and not torchrun_world_size():
        raise ConfigError(
            "launcher='pytorch': expected a process started by torchrun "
            f"({', '.join(TORCHRUN_VARIABLES)} unset); "
            "run `torchrun --nproc_per_node=N -m seglab ...`"
        )


def check_amp_device(cfg: Config) -> None:
    """amp=true: mmengine's AmpOptimWrapper runs on CUDA, NPU, MLU or MUSA devices, not on a CPU.
    (A config whose own optim_wrapper is an AmpOptimWrapper is refused by check_requirements,
    naming optim_wrapper.type.)"""
    from mmengine.device import get_device

    if cfg.optim_wrapper.get("type") == "AmpOptimWrapper" and get_device() not in AMP_DEVICES:
        raise ConfigError(
            "amp=true: mixed precision needs a GPU (mmengine's AmpOptimWrapper); this machine "
            "has none, so train with amp=false"
        )


def _heads(model: dict) -> Iterator[tuple[str, dict]]:
    for name in ("decode_head", "auxiliary_head"):
        head = model.get(name)
        heads = head if isinstance(head, (list, tuple)) else [head] if head else []
        for i, h in enumerate(heads):
            yield (f"model.{name}" + (f"[{i}]" if len(heads) > 1 else "")), h


# Heads whose classes are not the data set's: STDC's detail head learns boundary or not (it
# turns each label map into a boundary map), whatever the data set's classes.
HEAD_CLASSES = {"STDCHead": (2, "STDCHead predicts boundary or not")}


def check_class_counts(cfg: Config) -> None:
    """Every head predicts as many classes as each data set it trains and is scored on declares.

    An open-vocabulary model (SAN: `model.text_encoder`) names its classes with its text
    encoder's vocabulary, set to the data set it is scored on; upstream's SAN configs for VOC
    evaluate weights trained on COCO-Stuff and keep the base's 21-class VOC train set beside
    their 20-class test sets (VOC's background mapped to ignore), so only the val and test data
    sets are compared there.
    """
    open_vocabulary = cfg.model.get("text_encoder") is not None
    for key, dataset in leaf_datasets(cfg):
        if open_vocabulary and key.startswith("train_dataloader"):
            continue
        classes = dataset_classes(dataset)
        if classes is None:
            continue
        for head_key, head in _heads(cfg.model):
            num = head.get("num_classes")
            # a binary head may predict one sigmoid channel for two classes (mmseg's out_channels)
            if num is None or head.get("out_channels") == 1:
                continue
            expected, what = HEAD_CLASSES.get(head.get("type"), (len(classes), None))
            if num == expected:
                continue
            if what is not None:
                raise ConfigError(f"{head_key}.num_classes={num}: {what}, expected {expected}")
            raise ConfigError(
                f"{head_key}.num_classes={num}: the data set ({key}.type={dataset['type']!r}) "
                f"has {len(classes)} classes; set dataset.num_classes (every head follows it)"
            )


def weight_sources(cfg: Config) -> Iterator[tuple[str, str]]:
    """(key, path or URL) of every pretrained weight file the model or run loads."""

    def walk(key: str, node: Any) -> Iterator[tuple[str, str]]:
        if isinstance(node, dict):
            if node.get("type") == "Pretrained" and isinstance(node.get("checkpoint"), str):
                yield f"{key}.checkpoint", node["checkpoint"]
            for k, v in node.items():
                if k == "pretrained" and isinstance(v, str):
                    yield f"{key}.{k}", v
                else:
                    yield from walk(f"{key}.{k}", v)
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                yield from walk(f"{key}[{i}]", v)

    yield from walk("model", cfg.model)
    if cfg.get("load_from"):
        yield "load_from", cfg.load_from


def check_weights_reachable(cfg: Config, network_timeout: float = 3.0) -> None:
    for key, source in weight_sources(cfg):
        if not source.startswith(URL_SCHEMES):
            if not os.path.isfile(os.path.expanduser(source)):
                raise ConfigError(
                    f"{key}={source!r} is not a file; expected a local weights file, "
                    f"a URL, or {key}=null to train from scratch"
                )
            continue
        url = resolve_weights_url(source)
        if url is None or _in_torch_hub_cache(url):
            continue
        host = urlparse(url).hostname or ""
        try:
            socket.create_connection((host, 443), timeout=network_timeout).close()
        except OSError as err:
            raise ConfigError(
                f"{key}={source!r} cannot be downloaded ({host}: {err.strerror or err}); "
                f"point it at a local file ({key}=/path/to/{os.path.basename(url)}) "
                f"or turn it off ({key}=null)"
            ) from None


def resolve_weights_url(source: str) -> str | None:
    """The http(s) URL mmengine downloads `source` from (its own open-mmlab:// tables)."""
    from mmengine.runner.checkpoint import get_deprecated_model_names, get_external_models

    if source.startswith(("http://", "https://")):
        return source
    for prefix in ("open-mmlab://", "openmmlab://"):
        if source.startswith(prefix):
            name = source[len(prefix) :]
            name = get_deprecated_model_names().get(name, name)
            url = get_external_models().get(name)
            return url if url and url.startswith(("http://", "https://")) else None
    if source.startswith("mmcls://"):
        from mmengine.runner.checkpoint import get_mmcls_models

        url = get_mmcls_models().get(source[len("mmcls://") :])
        return url if url and url.startswith(("http://", "https://")) else None
    return None  # torchvision:// resolves inside torchvision (a requirement of its own)


def _in_torch_hub_cache(url: str) -> bool:
    import torch.hub

    cached = Path(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path))
    return cached.is_file()
