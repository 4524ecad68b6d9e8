"""What counts as a secret on seglab's command line, and how it is kept out of names and logs.

Run directory names, sweep names, what wandb records and seglab's printed lines are all built
from the command-line overrides. There an override is masked when its key looks like a
credential (`+wandb.api_token=...`) or its value reads an environment variable
(`${oc.env:VAR}`): the key stays, the value becomes `masked-<hash>`. The hash is of the value as
written, so two different secrets still get two different run directories, and it is a slow
one, so a short password cannot be recovered from a name by trying candidates.

Masking must see the overrides as written: Hydra keeps them as strings in its config, and
reading them (`${hydra:overrides.task}`, `${hydra:job.override_dirname}`) resolves an
`${oc.env:VAR}` in them. `${hydra_masked:...}` (conf/config.yaml) reads them unresolved, then
masks. The same key rule keeps such entries out of the config wandb receives.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from typing import Any

SECRET_KEY = re.compile(r"key|token|secret|password", re.IGNORECASE)
# a sweep's jobs get their values escaped (`$\{oc.env\:VAR\}`)
READS_ENV = re.compile(r"\boc\.env\s*\\?:")
MASKED = re.compile(r"masked-[0-9a-f]{8}")


def looks_secret(key: str) -> bool:
    """Whether a config key (or an override's dotted key) names a credential."""
    return bool(SECRET_KEY.search(key))


def reads_env(value: Any) -> bool:
    """Whether a value as written takes an environment variable's content."""
    return isinstance(value, str) and bool(READS_ENV.search(value))


# the characters Hydra escapes in the overrides it writes for a sweep's jobs
_ESCAPED = re.compile(r"\\([\\()\[\]{}:=, \t])")


@functools.lru_cache(maxsize=256)
def mask_value(value: str) -> str:
    """`masked-` and 8 hex digits of a deliberately slow hash of `value` (unescaped, so a
    sweep job's override and its config value are masked alike)."""
    plain = _ESCAPED.sub(r"\1", value)
    digest = hashlib.pbkdf2_hmac("sha256", plain.encode(), b"seglab-masked-value", 100_000)
    return f"masked-{digest.hex()[:8]}"


def mask_override(override: str) -> str:
    """`key=value` with the value masked where the key or the value says it is a secret."""
    key, sep, value = override.partition("=")
    if not sep or MASKED.fullmatch(value):
        return override
    if looks_secret(key.lstrip("+~")) or reads_env(value):
        return f"{key}={mask_value(value)}"
    return override


def mask_overrides(overrides: Iterable[str]) -> list[str]:
    """Every override of a command line (or sys.argv) with its secret values masked."""
    return [mask_override(str(o)) for o in overrides]


@contextlib.contextmanager
def masked_argv() -> Iterator[None]:
    """sys.argv with its secret values masked, while a library that records it reads it."""
    argv = sys.argv
    sys.argv = [*argv[:1], *mask_overrides(argv[1:])]
    try:
        yield
    finally:
        sys.argv = argv


class MaskingFilter(logging.Filter):
    """Masks the secret `key=value` words of a log line (Hydra's launchers log each job's
    overrides)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = " ".join(mask_overrides(message.split(" ")))
        if masked != message:
            record.msg, record.args = masked, None
        return True


# the loggers of the Hydra launchers seglab offers, which log every job's overrides
LAUNCHER_LOGGERS = (
    "hydra._internal.core_plugins.basic_launcher",
    "hydra_plugins.hydra_joblib_launcher._core",
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher",
)


def mask_launcher_logs() -> None:
    """Have the launchers' loggers mask secrets (once per process)."""
    for name in LAUNCHER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, MaskingFilter) for f in logger.filters):
            logger.addFilter(MaskingFilter())


def _job_overrides() -> list[tuple[str, str, str]]:
    """(key, as written, as shown) for each task override of the current Hydra job: shown is
    masked where it is a secret, else as Hydra gives it (interpolations resolved)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    task = HydraConfig.get().overrides.task
    written = OmegaConf.to_container(task, resolve=False)
    parsed = OverridesParser.create().parse_overrides(written)
    rows = []
    for i, (line, override) in enumerate(zip(written, parsed, strict=True)):
        masked = mask_override(line)
        rows.append((override.key_or_group, line, masked if masked != line else task[i]))
    return rows


def task_overrides() -> list[str]:
    """The current Hydra job's task overrides, secret values masked."""
    return [shown for _, _, shown in _job_overrides()]


def override_dirname() -> str:
    """Hydra's `job.override_dirname` (same keys, order and separators), secrets masked."""
    from hydra.core.hydra_config import HydraConfig

    options = HydraConfig.get().job.config.override_dirname
    kept = sorted(
        (line, shown) for key, line, shown in _job_overrides() if key not in options.exclude_keys
    )
    # as Hydra builds it: sorted as written, then every `=` becomes kv_sep
    return options.item_sep.join(shown for _, shown in kept).replace("=", options.kv_sep)


def hydra_masked(path: str) -> Any:
    """`${hydra_masked:job.override_dirname}` and `${hydra_masked:overrides.task}`."""
    readers = {"job.override_dirname": override_dirname, "overrides.task": task_overrides}
    if path not in readers:
        raise ValueError(f"hydra_masked:{path}: expected one of {', '.join(readers)}")
    return readers[path]()


def mask_env_values(resolved: Any, raw: Any) -> Any:
    """`resolved` (a config as a container) with every value written as `${oc.env:...}` masked.

    `raw` is the same config unresolved; a key whose name looks secret is dropped elsewhere.
    """
    if reads_env(raw):
        return mask_value(raw)
    if isinstance(resolved, dict) and isinstance(raw, dict):
        return {k: mask_env_values(v, raw.get(k)) for k, v in resolved.items()}
    if isinstance(resolved, list) and isinstance(raw, list) and len(raw) == len(resolved):
        return [mask_env_values(v, r) for v, r in zip(resolved, raw, strict=True)]
    return resolved
