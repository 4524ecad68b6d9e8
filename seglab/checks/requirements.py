"""What a config needs beyond seglab's own install, read from the evaluated config alone.

mmseg registers every type it knows whether or not the code behind it can run here: a class that
wraps an optional package is registered all the same and fails only when it is built, minutes
into a run, deep in a traceback (`gdal is not installed`, `AmpOptimWrapper is only available
training on gpu`). This module names such a need in one line before anything runs, from the
config's `custom_imports`, its `type` values and its optimizer wrapper.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mmengine.config import Config

from seglab.config.pretrained import turn_off_hint
from seglab.errors import ConfigError
from seglab.tree import key_of, leaves

ZOO = "pip install -e '.[zoo]' (make install does it)"
# PyPI's torchvision 0.28.0 (the release for torch 2.13.0) is a CUDA build: beside the CPU torch
# it fails to import ('operator torchvision::nms does not exist'); a newer one replaces torch.
TORCHVISION = (
    "no CPU build on PyPI: install torchvision==0.28.0 from PyTorch's CPU wheel index (not "
    "plain `pip install torchvision`: PyPI's builds need a CUDA torch)"
)
LDM = (
    "no package on PyPI: `ldm` is CompVis/stable-diffusion's code, which mmseg's "
    "requirements/optional.txt installs from git (commit 21f890f, egg latent-diffusion)"
)
GDAL = (
    "pip install GDAL==$(gdal-config --version) after the system's GDAL headers "
    "(apt-get install libgdal-dev)"
)
# the mmcv 2.1.0 build seglab installs has its CPU kernels only
GPU_OPS = (
    "it runs on a GPU with mmcv built with its CUDA ops (FORCE_CUDA=1), and this machine has none"
)

# Packages that an OpenMMLab registry scope or an import names: (module to find, how).
PACKAGES: dict[str, tuple[str, str]] = {
    "mmdet": ("mmdet", ZOO),
    "mmpretrain": ("mmpretrain", ZOO),
    "albumentations": ("albumentations", ZOO),
    "dsdl": ("dsdl", ZOO),
    # `import mmpretrain.models` (its custom_imports, and how mmengine finds 'mmpretrain.X')
    # imports torchvision, which mmpretrain does not declare
    "torchvision": ("torchvision", TORCHVISION),
    "ldm": ("ldm", LDM),
    "GDAL (osgeo)": ("osgeo", GDAL),
    "timm": ("timm", "pip install timm"),
}
ALSO_IMPORTS = {"mmpretrain": ("torchvision",)}

# Unscoped mmseg types that resolve to a class needing a package (mmseg imports it in a
# try/except and fails only when the class is built).
TYPE_NEEDS = {
    "Mask2FormerHead": "mmdet",  # mmseg's wrappers of mmdet's heads
    "MaskFormerHead": "mmdet",
    "Albu": "albumentations",
    "DSDLSegDataset": "dsdl",
    "VPD": "ldm",  # VPD's backbone is Stable Diffusion's UNet
    "LoadSingleRSImageFromFile": "GDAL (osgeo)",  # remote-sensing and change-detection loading
    "LoadMultipleRSImageFromFile": "GDAL (osgeo)",
    "TIMMBackbone": "timm",
}

# Types that call an mmcv compiled op without a CPU kernel in mmcv 2.1.0: type -> op. None of
# upstream's does. Measured by building each config's model (weights off) and running one
# forward and backward on a CPU batch: CCHead (ccnet, CrissCrossAttention), PSAHead (psanet,
# PSAMask's CPU kernel), PointHead (point_rend, point_sample), SAN's SideAdapterCLIPHead
# (point_sample), mask2former's MSDeformAttnPixelDecoder (MultiScaleDeformableAttention, which
# falls back to PyTorch off CUDA) and maskformer: all trained on a CPU.
CPU_LESS_OPS: dict[str, str] = {}

# mmengine's AmpOptimWrapper asserts one of these devices
AMP_DEVICES = ("cuda", "npu", "mlu", "musa")
AMP_HOW = (
    "mmengine's AmpOptimWrapper runs on CUDA, NPU, MLU or MUSA devices only; train in full "
    "precision with optim_wrapper.type=OptimWrapper (and no loss_scale)"
)
# types of seglab's own stack: a scope of theirs needs nothing more
OWN_SCOPES = ("mmseg", "mmengine", "mmcv")
# the keys the Runner reads first: a need is named by the key a user recognises
FIRST_KEYS = ("model", "train_dataloader", "val_dataloader", "test_dataloader", "optim_wrapper")


@dataclass(frozen=True)
class Requirement:
    what: str  # the package or device, e.g. "mmdet", "a GPU"
    why: str  # the key and value that need it, e.g. "model.decode_head.type='Mask2FormerHead'"
    how: str  # how to get it
    available: bool  # on this machine

    def line(self) -> str:
        """One line for a user: what is missing, which key needs it, how to get it."""
        if self.what == "a GPU":
            return f"{self.why} needs a GPU, which this machine lacks; {self.how}"
        if self.what.startswith("mmcv op"):
            return f"{self.why} needs {self.what}; {self.how}"
        return f"{self.why} needs {self.what}, which is not installed; {self.how}"


def _importable(module: str) -> bool:
    """Whether `module` can be found, without running it (a dotted name runs its parents)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing or broken
        return False


def _amp_device() -> bool:
    from mmengine.device import get_device

    return get_device() in AMP_DEVICES


def _types(key: str, node: Any) -> Iterator[tuple[str, str]]:
    """(key, value) of every `type` in `node`, depth first."""
    return ((k, v) for k, v in leaves(node, key) if key_of(k) == "type" and isinstance(v, str))


def _strings(key: str, node: Any) -> Iterator[tuple[str, str]]:
    return ((k, v) for k, v in leaves(node, key) if isinstance(v, str))


def requirements(
    cfg: dict | Config,
    is_installed: Callable[[str], bool] = _importable,
    has_gpu: Callable[[], bool] = _amp_device,
) -> list[Requirement]:
    """What `cfg` needs beyond seglab's install, each named once, by the first key that needs it
    (model, data loaders and optimizer before the rest)."""
    cfg = cfg.to_dict() if isinstance(cfg, Config) else cfg
    found: dict[str, Requirement] = {}

    def need(what: str, why: str, how: str | None = None, available: bool | None = None) -> None:
        if what in found:
            return
        module, default_how = PACKAGES.get(what, (what, f"pip install {what}"))
        available = is_installed(module) if available is None else available
        found[what] = Requirement(what, why, how or default_how, available)
        for also in ALSO_IMPORTS.get(what, ()):
            need(also, why)

    keys = [k for k in FIRST_KEYS if k in cfg] + [k for k in cfg if k not in FIRST_KEYS]
    for top in keys:
        if top == "custom_imports":
            continue
        for key, value in _types(top, cfg[top]):
            why = f"{key}={value!r}"
            scope, _, name = value.rpartition(".")
            if scope and scope.split(".")[0] not in OWN_SCOPES:
                need(scope.split(".")[0], why)
            elif name in TYPE_NEEDS:
                need(TYPE_NEEDS[name], why)
            elif name in CPU_LESS_OPS:
                op = CPU_LESS_OPS[name]
                need(f"mmcv op {op}, which has no CPU kernel", why, GPU_OPS, has_gpu())
            if key == "optim_wrapper.type" and name == "AmpOptimWrapper":
                need("a GPU", why, AMP_HOW, has_gpu())
    # mmengine loads torchvision:// weights through torchvision's model zoo
    for key, source in _strings("model", cfg.get("model", {})):
        if source.startswith("torchvision://"):
            how = f"{TORCHVISION}; or train from scratch: {turn_off_hint(key)}"
            need("torchvision", f"{key}={source!r}", how)
    imports = cfg.get("custom_imports") or {}
    if not imports.get("allow_failed_imports", False):
        modules = imports.get("imports", [])
        for module in [modules] if isinstance(modules, str) else modules:
            top = module.split(".")[0]
            if top not in ("mmseg", "seglab"):
                why = f"custom_imports.imports={module!r}"
                need(top, why, available=is_installed(module) if is_installed(top) else False)
    return list(found.values())


def check_requirements(
    cfg: dict | Config,
    is_installed: Callable[[str], bool] = _importable,
    has_gpu: Callable[[], bool] = _amp_device,
) -> None:
    """Refuse, in one line, a config that needs what this machine lacks (the first of them)."""
    missing = [r for r in requirements(cfg, is_installed, has_gpu) if not r.available]
    if missing:
        raise ConfigError(missing[0].line())


# Hydra's submitit launcher for SLURM (the `slurm` preset's, and `submitit_slurm`)
SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def torchrun_world_size(env: Mapping[str, str] = os.environ) -> int:
    """How many processes torchrun started for this run; 0 when torchrun did not start it."""
    if not set(TORCHRUN_VARIABLES) <= env.keys():
        return 0
    return int(env["WORLD_SIZE"])


def visible_devices() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES if set, else all that torch sees."""
    if os.environ.get("CUDA_VISIBLE_DEVICES"):
        return [d.strip() for d in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def pool_devices(devices: Sequence[int | str] | None) -> list[str]:
    """The pool: the devices named (hydra.launcher.devices), else every GPU this process sees.

    An empty pool is a ConfigError, checked before the sweep starts (check_launcher_environment)
    and again when the GPU pool launcher starts. Named devices are taken as they are: a pool of
    device names also runs on a CPU (CUDA_VISIBLE_DEVICES is then only a name).
    """
    if devices is not None:
        if not devices:
            raise ConfigError("hydra.launcher.devices=[]: expected at least one GPU index")
        return [str(d) for d in devices]
    pool = visible_devices()
    if not pool:
        raise ConfigError(
            "hydra/launcher=gpu_pool: this machine has no GPU (torch sees none); sweep on the "
            "CPU without it (hydra/launcher=cpu_parallel runs jobs side by side)"
        )
    return pool


def check_launcher_environment(choice: str | None, launcher: Mapping[str, Any]) -> None:
    """Refuse, in one line before the sweep starts, a launcher this machine cannot run: the GPU
    pool without a GPU (the pool is empty: a traceback once the sweep has started), SLURM's
    without SLURM (submitit's first `sbatch` fails, a traceback per sweep). `choice`: the
    `hydra/launcher` option as the user named it."""
    target = str(launcher.get("_target_", ""))
    if target.endswith(".GPUPoolLauncher"):
        pool_devices(launcher.get("devices"))
    elif target == SLURM_LAUNCHER:
        problem = slurm_problem()
        if problem:
            raise ConfigError(
                f"hydra/launcher={choice}: {problem}; launch the sweep where SLURM runs (a "
                "login node), or try it on this machine with hydra/launcher=slurm_local"
            )


def slurm_problem(timeout: float = 20.0) -> str | None:
    """Why SLURM cannot take a job from here, or None: no `sbatch`, or a controller that does
    not answer `scontrol ping` (no slurm.conf, controller down), which submitit meets only at
    its first `sbatch`, as a traceback."""
    if shutil.which("sbatch") is None or shutil.which("scontrol") is None:
        return "this machine has no SLURM (no sbatch on PATH)"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"SLURM's controller did not answer `scontrol ping` within {timeout:.0f} s"
    if ping.returncode != 0:
        said = [line for line in (ping.stderr or ping.stdout).splitlines() if line.strip()]
        return f"SLURM does not answer here (`scontrol ping`: {said[-1] if said else 'failed'})"
    return None
