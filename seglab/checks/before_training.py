"""Checks of a converted config against the machine and the data, run before any training.

Each failure is a ConfigError whose one line names the key, the value and what was expected.
"""

from __future__ import annotations

import difflib
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from mmengine.config import Config

from seglab.checkpoint_loading import URL_PREFIXES, hub_cache_file, weights_url
from seglab.checks.crop_memory import check_crop_memory
from seglab.checks.data_files import check_data_files, dataset_classes, leaf_datasets
from seglab.checks.label_settings import check_label_settings
from seglab.checks.requirements import AMP_DEVICES, check_requirements
from seglab.checks.training_loop import check_training_loop
from seglab.config.pretrained import turn_off_hint, weight_sources
from seglab.errors import ConfigError

URL_SCHEMES = ("http://", "https://", "open-mmlab://", "openmmlab://", "mmcls://", "torchvision://")


def check_before_training(
    cfg: Config,
    network_timeout: float = 3.0,
    precision_switch: str | None = None,
    compile: bool = False,
) -> None:
    """`precision_switch`: the seglab switch (`amp=true`, `precision=bf16`) that made the
    optim_wrapper an AmpOptimWrapper; its need of a GPU is then named by that switch rather
    than by the config key it set. `compile`: seglab's compile=true."""
    if precision_switch:
        check_amp_device(cfg, precision_switch)
    if compile:
        check_compile()
    # packages, devices and compiled ops the config needs: before anything reads data
    check_requirements(cfg)
    check_registry_types(cfg)
    check_counts(cfg)
    check_training_loop(cfg)
    check_backbone_depth(cfg)
    check_launcher(cfg)
    check_class_counts(cfg)
    check_label_settings(cfg)
    check_palettes(cfg)
    check_sliding_window(cfg)
    largest_image = check_data_files(cfg)
    check_weights_reachable(cfg, network_timeout)
    check_crop_memory(cfg, largest_image)


# Which of mmengine's root registries builds the `type` of a node: by the top-level key, then
# (INNER) by the registry of the node above and the key that holds it, as mmengine's Runner and
# mmseg's classes build them. A node found in neither table is not checked: its `type` may name
# something no registry holds (albumentations' transforms inside `Albu`).
TOP_REGISTRIES = {
    "model": "MODELS",
    "tta_model": "MODELS",
    "model_wrapper_cfg": "MODEL_WRAPPERS",
    "optim_wrapper": "OPTIM_WRAPPERS",
    "param_scheduler": "PARAM_SCHEDULERS",
    "custom_hooks": "HOOKS",
    "val_evaluator": "METRICS",
    "test_evaluator": "METRICS",
    "visualizer": "VISUALIZERS",
    "log_processor": "LOG_PROCESSORS",
    "train_cfg": "LOOPS",
    "val_cfg": "LOOPS",
    "test_cfg": "LOOPS",
    "tta_pipeline": "TRANSFORMS",
}
INNER_REGISTRIES = {
    (None, "dataset"): "DATASETS",  # the data loaders'
    (None, "sampler"): "DATA_SAMPLERS",
    (None, "batch_sampler"): "DATA_SAMPLERS",
    ("DATASETS", "dataset"): "DATASETS",  # RepeatDataset's, ConcatDataset's
    ("DATASETS", "datasets"): "DATASETS",
    ("DATASETS", "pipeline"): "TRANSFORMS",
    ("TRANSFORMS", "transforms"): "TRANSFORMS",  # TestTimeAug's, RandomChoice's, ...
    ("OPTIM_WRAPPERS", "optimizer"): "OPTIMIZERS",
    ("VISUALIZERS", "vis_backends"): "VISBACKENDS",
    ("MODELS", "init_cfg"): "WEIGHT_INITIALIZERS",
    ("MODELS", "sampler"): "TASK_UTILS",  # a head's pixel sampler
    ("MODELS", "assigner"): "TASK_UTILS",
    ("MODELS", "match_costs"): "TASK_UTILS",
}
TOP_KEYS_WALKED = ("train_dataloader", "val_dataloader", "test_dataloader", "default_hooks")
# a node whose own keys name no registry's types: albumentations' transforms inside `Albu`
OPAQUE_TYPES = ("Albu",)
# types that no registry holds but mmseg's modules read themselves: (registry, type)
READ_BY_MODULES = {
    # ViT, the CLIP text encoder and SAN's head load part of a checkpoint in their init_weights
    ("WEIGHT_INITIALIZERS", "Pretrained_Part"),
}


def typed_nodes(cfg: Config) -> Iterator[tuple[str, str, str]]:
    """(key, registry name, type) of every `type` that a registry of known kind builds."""

    def walk(key: str, node: Any, registry: str | None) -> Iterator[tuple[str, str, str]]:
        if isinstance(node, (list, tuple)):
            for i, item in enumerate(node):
                yield from walk(f"{key}[{i}]", item, registry)
            return
        if not isinstance(node, dict):
            return
        if registry is not None and isinstance(node.get("type"), str):
            yield f"{key}.type", registry, node["type"]
            if node["type"].rpartition(".")[2] in OPAQUE_TYPES:
                return
        for name, child in node.items():
            # inside a model every sub-module is a model, unless the table says otherwise
            inner = INNER_REGISTRIES.get(
                (registry, name), "MODELS" if registry == "MODELS" else None
            )
            if registry is None and key == "default_hooks":
                inner = "HOOKS"
            # a data loader's nodes are looked at by name; below them, only typed nodes
            if inner is not None or key in TOP_KEYS_WALKED:
                yield from walk(f"{key}.{name}", child, inner)

    for top, node in cfg.items():
        yield from walk(top, node, TOP_REGISTRIES.get(top))


def check_registry_types(cfg: Config) -> None:
    """Every `type` names a class its registry holds, looked up as the Runner builds it (in the
    config's default scope, falling back to mmengine's): a misspelt one is one line with the
    closest names, not `None is not a callable object` once the Runner gets to it."""
    import mmengine.registry
    from mmengine.utils import import_modules_from_strings

    if cfg.get("custom_imports"):  # a user's own modules register their types on import
        import_modules_from_strings(**cfg.custom_imports)
    scope = cfg.get("default_scope") or "mmseg"
    for key, name, value in typed_nodes(cfg):
        if (name, value) in READ_BY_MODULES:
            continue
        root = getattr(mmengine.registry, name)
        with root.switch_scope_and_registry(scope) as registry:
            if registry.get(value) is None:
                raise ConfigError(f"{key}={value!r}: {_unknown_type(registry, value)}")


def _unknown_type(registry: Any, value: str) -> str:
    """`no optimizer 'Adamm' in mmengine's registry; did you mean AdamW?`"""
    chain, names = [], []
    node = registry
    while node is not None:  # a scope's registry and its parents: all that `get` searches
        if node.module_dict:
            chain.append(f"{node.scope}'s")
            names += list(node.module_dict)
        node = node.parent
    near = difflib.get_close_matches(value.rpartition(".")[2], names, n=4, cutoff=0.6)
    near += [n for n in names if n.lower() == value.lower() and n not in near]
    hint = f"did you mean {', '.join(near)}?" if near else f"none of its {len(names)} is close"
    return f"no {registry.name} '{value}' in {' or '.join(chain)} registry; {hint}"


# counts that mmengine takes as they come (a loop of -5 iterations trains nothing and then
# fails; 20.5 fails inside the loop): key -> the least value
COUNTS = {
    "train_cfg.max_iters": 1,
    "train_cfg.max_epochs": 1,
    "train_cfg.val_interval": 1,
    "train_dataloader.batch_size": 1,
    "val_dataloader.batch_size": 1,
    "test_dataloader.batch_size": 1,
    "train_dataloader.num_workers": 0,
    "val_dataloader.num_workers": 0,
    "test_dataloader.num_workers": 0,
}


def check_counts(cfg: Config) -> None:
    for key, least in COUNTS.items():
        top, _, name = key.partition(".")
        value = (cfg.get(top) or {}).get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            what = "a positive integer" if least == 1 else f"an integer from {least} up"
            raise ConfigError(f"{key}={value!r}: expected {what}")
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        settings = cfg.get(loader) or {}
        if settings.get("persistent_workers") and settings.get("num_workers") == 0:
            # torch's DataLoader raises this as the Runner builds the loader: a traceback
            raise ConfigError(
                f"{loader}.persistent_workers=true: needs {loader}.num_workers of 1 or more, "
                f"and it is 0; set {loader}.persistent_workers=false as well"
            )


def check_backbone_depth(cfg: Config) -> None:
    """A backbone with a table of depths (mmseg's ResNet family: `arch_settings`) takes one of
    them; another fails with a KeyError deep in the model's construction."""
    backbone = cfg.get("model", {}).get("backbone") or {}
    depth = backbone.get("depth")
    if depth is None or not isinstance(backbone.get("type"), str):
        return
    from mmseg.registry import MODELS

    with MODELS.switch_scope_and_registry(cfg.get("default_scope") or "mmseg") as registry:
        settings = getattr(registry.get(backbone["type"]), "arch_settings", None)
    if isinstance(settings, dict) and depth not in settings:
        depths = ", ".join(str(d) for d in settings)
        raise ConfigError(
            f"model.backbone.depth={depth!r}: {backbone['type']} has no depth {depth!r}; "
            f"expected one of {depths}"
        )


def _is_colour(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)
    )


def check_palettes(cfg: Config) -> None:
    """A data set's colours, where its config gives them, are one per class: mmseg refuses
    any other count only when the data set is built, after the model."""
    for key, dataset in leaf_datasets(cfg):
        palette = (dataset.get("metainfo") or {}).get("palette")
        classes = dataset_classes(dataset)
        # none or empty: mmseg's dataset generates one colour per class
        if not palette:
            continue
        bad = next((c for c in palette if not _is_colour(c)), None)
        if bad is not None:
            raise ConfigError(
                f"{key}.metainfo.palette: holds {bad!r}; expected one [r, g, b] per class, each "
                "a whole number from 0 to 255 (dataset.palette=[[0,0,0],[128,64,128],...]), or "
                "dataset.palette=[] for mmseg's generated colours"
            )
        if classes is None or len(palette) == len(classes):
            continue
        raise ConfigError(
            f"{key}.metainfo.palette: {len(palette)} colours for {len(classes)} classes; "
            "expected one [r, g, b] per class (seglab's dataset.palette), or "
            "dataset.palette=[] for mmseg's generated colours"
        )


def _pair(value: Any) -> tuple[int, int] | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return value[0], value[1]
    return None


def check_sliding_window(cfg: Config) -> None:
    """A sliding-window `test_cfg` whose stride is larger than its window skips pixels: mmseg's
    validation stops with a bare AssertionError after the training. Upstream links the window
    to the crop and writes the stride as a number, so a smaller `dataset.crop_size` gets there."""
    test_cfg = (cfg.get("model") or {}).get("test_cfg") or {}
    if test_cfg.get("mode") != "slide":
        return
    crop, stride = _pair(test_cfg.get("crop_size")), _pair(test_cfg.get("stride"))
    if crop is None or stride is None or all(s <= c for s, c in zip(stride, crop, strict=True)):
        return
    fitted = ",".join(str(max(1, c * 2 // 3)) for c in crop)  # upstream's overlap: 426 of 640
    raise ConfigError(
        f"model.test_cfg.stride={list(stride)}: larger than the sliding window "
        f"model.test_cfg.crop_size={list(crop)} (dataset.crop_size), so validation would skip "
        f"pixels; expected a stride of at most the window, e.g. model.test_cfg.stride=[{fitted}]"
    )


LAUNCHERS = ("none", "pytorch", "slurm", "mpi")


def check_launcher(cfg: Config) -> None:
    """mmengine reads the process's rank from its launcher's environment variables."""
    from seglab.checks.requirements import TORCHRUN_VARIABLES, torchrun_world_size

    launcher = cfg.get("launcher", "none")
    if launcher not in LAUNCHERS:
        raise ConfigError(f"launcher={launcher!r}: expected one of {', '.join(LAUNCHERS)}")
    if launcher == "pytorch" and not torchrun_world_size():
        raise ConfigError(
            "launcher='pytorch': expected a process started by torchrun "
            f"({', '.join(TORCHRUN_VARIABLES)} unset); "
            "run `torchrun --nproc_per_node=N -m seglab ...`"
        )


def check_amp_device(cfg: Config, switch: str = "amp=true") -> None:
    """amp=true, precision=fp16|bf16: mmengine 0.10's AmpOptimWrapper asserts a CUDA, NPU, MLU
    or MUSA device when it is built, so there is no mixed-precision training on a CPU (its
    autocast would take bf16 there; the wrapper refuses first). (A config whose own
    optim_wrapper is an AmpOptimWrapper is refused by check_requirements, naming
    optim_wrapper.type.)"""
    from mmengine.device import get_device

    if cfg.optim_wrapper.get("type") == "AmpOptimWrapper" and get_device() not in AMP_DEVICES:
        off = "amp=false" if switch.startswith("amp=") else "precision=fp32"
        raise ConfigError(
            f"{switch}: mixed precision needs a GPU (mmengine's AmpOptimWrapper); this machine "
            f"has none, so train with {off}"
        )


def check_compile() -> None:
    """compile=true: torch.compile's inductor backend generates C++ on a CPU (a compiler must
    be found: g++, or $CXX) and Triton kernels on a GPU (the triton package)."""
    import torch
    import torch._dynamo
    from mmengine.device import get_device

    if not torch._dynamo.is_dynamo_supported():
        raise ConfigError(
            f"compile=true: torch.compile does not support this Python "
            f"({sys.version.split()[0]}) with torch {torch.__version__}; train with compile=false"
        )
    if get_device() == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            raise ConfigError(
                "compile=true: torch.compile's inductor backend needs the triton package on a "
                "GPU, which is not installed; pip install triton, or train with compile=false"
            )
        return
    from torch._inductor import cpp_builder, exc

    try:
        cpp_builder.get_cpp_compiler()
    except exc.InvalidCxxCompiler:
        raise ConfigError(
            "compile=true: torch.compile's inductor backend needs a C++ compiler on a CPU (g++, "
            "or the one $CXX names), which this machine lacks; install g++, or train with "
            "compile=false"
        ) from None


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
                f"has {len(classes)} classes ({', '.join(map(str, classes[:6]))}"
                f"{', ...' if len(classes) > 6 else ''}); name your classes with "
                "dataset.classes=[a,b,...] (dataset=custom: every head follows their count), or "
                f"set dataset.num_classes={len(classes)}"
            )


def check_weights_reachable(cfg: Config, network_timeout: float = 3.0) -> None:
    for key, source in weight_sources(cfg):
        if not source.startswith(URL_SCHEMES):
            if not os.path.isfile(os.path.expanduser(source)):
                raise ConfigError(
                    f"{key}={source!r} is not a file; expected a local weights file or a "
                    f"URL, or train from scratch: {turn_off_hint(key)}"
                )
            continue
        url = resolve_weights_url(source)
        if url is None or hub_cache_file(url).is_file():
            continue
        parts = urlparse(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((host, port), timeout=network_timeout).close()
        except OSError as err:
            raise ConfigError(
                f"{key}={source!r} cannot be downloaded ({host}: {err.strerror or err}); "
                f"point it at a local file ({key}=/path/to/"
                f"{os.path.basename(parts.path) or 'weights.pth'}) "
                f"or turn it off: {turn_off_hint(key)}"
            ) from None


def resolve_weights_url(source: str) -> str | None:
    """The http(s) URL mmengine downloads `source` from (its own open-mmlab:// tables)."""
    if source.startswith(("torchvision://", "modelzoo://")):
        return None  # resolves inside torchvision (a requirement of its own)
    url = weights_url(source)
    return url if url.startswith(URL_PREFIXES) else None
