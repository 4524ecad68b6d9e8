"""`seglab env`: what the install guide's "verify the installation" step checks, followed by
mmengine's `collect_env()` (platform, GPU names, CUDA and compilers, how torch was built), the
report mmengine's Runner logs at the start of a run and mmseg's bug-report template asks for."""

from __future__ import annotations

import importlib
import importlib.metadata
import platform

from packaging.specifiers import SpecifierSet
from packaging.version import Version

# mmsegmentation 1.2.2 asserts this mmcv range at import
MMCV_FOR_MMSEG = SpecifierSet(">=2.0.0rc4,<2.2.0")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_environment() -> tuple[list[str], list[str]]:
    """(lines to print, problems); no problems means a run can start."""
    lines = [f"Python: {platform.python_version()}"]
    problems = []
    torch_version = _version("torch")
    if torch_version is None:
        problems.append("torch is not installed (make install)")
    else:
        import torch

        cuda = torch.cuda.is_available()
        lines.append(f"torch: {torch_version}")
        lines.append(
            f"CUDA available: {cuda}"
            + (f" (CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU)" if cuda else "")
        )
    for package in ("mmcv", "mmengine", "mmsegmentation", "hydra-core", "wandb", "optuna"):
        version = _version(package)
        lines.append(f"{package}: {version or 'missing'}")
        if version is None:
            problems.append(f"{package} is not installed (make install)")
    mmcv_version = _version("mmcv")
    if mmcv_version is not None:
        if Version(mmcv_version) not in MMCV_FOR_MMSEG:
            problems.append(f"mmcv {mmcv_version}: mmsegmentation 1.2.2 needs mmcv{MMCV_FOR_MMSEG}")
        try:
            importlib.import_module("mmcv._ext")
            lines.append("mmcv compiled ops: load")
        except ImportError as err:
            lines.append("mmcv compiled ops: missing")
            problems.append(
                f"mmcv was built without its compiled ops ({err}); mmseg imports "
                "mmcv.ops: rebuild it with MMCV_WITH_OPS=1 (make install)"
            )
    if torch_version is not None:
        lines += ["", "mmengine collect_env():", *collected_environment()]
    return lines, problems


def collected_environment() -> list[str]:
    """mmengine's `collect_env()` as `key: value` lines."""
    try:
        from mmengine.utils.dl_utils import collect_env

        return [f"{key}: {str(value).rstrip()}" for key, value in collect_env().items()]
    except Exception as err:  # a report, not a check: seglab's own checks above still stand
        return [f"(not collected: {err})"]


def ready_line() -> str:
    """The last line of `seglab env` when nothing is wrong: where runs will train."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    where = f"{gpus} GPU{'s' if gpus > 1 else ''}" if gpus else "the CPU (no GPU visible)"
    return f"seglab env: all is well; runs train on {where}"
