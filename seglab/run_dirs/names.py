"""The names of run and sweep directories: a function of the command-line overrides, never of
the clock, so the same command launched again finds its directories (`run_name`):
- a single run: `outputs/runs/NAME`, NAME from its overrides (conf/config.yaml `hydra.run.dir`);
- a sweep: `outputs/sweeps/NAME/JOB`, NAME from the sweep's task overrides as written (comma
  lists and all: `sweep_name`), JOB from the job's overrides less the keys that the whole sweep
  sets to one value (`fixed_keys`). RunDirCallback names the sweep before its sweeper starts
  and pins both for the jobs: Hydra composes each job's config again from its overrides
  (`load_sweep_config`, in this process or in a launcher's), where the sweep's own overrides
  are gone;
- a name says first what tells runs apart (group choices, swept and changed values, numbers
  short), housekeeping last, and ends in a hash of all the overrides (`run_name`);
- secret values are masked in every name (seglab/masking.py).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Collection, Sequence
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from seglab import CONF_DIR
from seglab.masking import MASKED, mask_overrides
from seglab.overrides import override_key

_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]")


# a name's readable part stops at a whole override within this many characters; a name that is
# not the overrides as written ends in `-` and a hash of them
READABLE = 80


# keys that change how a run reports, saves or loads, not what it learns: named last
HOUSEKEEPING = re.compile(
    r"^(default_hooks|log_processor|log_level|env_cfg|visualizer|wandb|mlflow|tensorboard)(\.|$)"
    r"|(^|\.)(num_workers|persistent_workers|pin_memory|val_interval)$"
)


# values that are long and say little in a name (a data set's class names and colours, a
# path): they give way first, after housekeeping
BULKY = re.compile(
    r"(^|\.)(classes|palette|data_root|data_prefix|ann_file|img_dir|ann_dir|train_split"
    r"|val_split|img_suffix|seg_map_suffix)$"
)


# the groups that say which model a run trains, first in a name (with `pretrained`, whether
# it starts from pretrained weights)
MODEL_GROUPS = ("experiment", "model", "pretrained")


# a zoo experiment's name after its model: `_4xb2-80k_cityscapes-512x1024` (GPUs x batch, ...)
_AFTER_MODEL = re.compile(r"_\d+xb\d+.*$")


# the sections whose changes say most about a run, in that order, before any other key
TELLING = ("optim_wrapper", "param_scheduler", "train_cfg", "model", "train_dataloader")


# an override of the form `key=value` as Hydra writes it into `override_dirname`
_KEY = re.compile(r"^[+~]{0,2}[A-Za-z_][\w.@/-]*=")


_FLOAT = re.compile(
    r"(?<![\w.])-?\d+\.\d*(?:e[+-]?\d+)?(?![\w.])|(?<![\w.])-?\d+e[+-]?\d+(?![\w.])"
)


_SIZE = re.compile(r"\[\s*(\d+(?:\s*,\s*\d+)+)\s*\]")


def run_name(override_dirname: str) -> str:
    """A directory name that is a function of the job's overrides, not of the clock.

    `override_dirname` is Hydra's (`k=v,k=v`, sorted). The name lists what tells runs apart
    first: group choices, then changed values (learning rate, schedule, model before data
    and loaders), then housekeeping (logging and checkpoint intervals, loader workers), with
    each key cut to its shortest unambiguous tail and long numbers to 3 significant digits;
    it stops at a whole override within READABLE characters. Unless the name is the overrides
    exactly as written, it ends in a hash of all of them, so two different override sets never
    share a directory and the same ones always find theirs (a relaunched sweep's jobs).
    """
    if not override_dirname:
        return "default"
    return _named(_split(override_dirname), override_dirname, set())


def sweep_name(task_overrides: Sequence[str]) -> str:
    """A sweep directory's name: the sweep's task overrides as written (Hydra's own are not
    among them: a launcher or a sweeper setting does not change what the jobs compute),
    secret values masked, named as `run_name` names a run, the swept keys right after the
    group choices. The hash is of the overrides sorted, so their order does not matter."""
    masked = mask_overrides(sorted(task_overrides))
    parsed = OverridesParser.create().parse_overrides(masked)
    swept = {o.key_or_group for o in parsed if o.is_sweep_override()}
    return _named(masked, ",".join(masked), swept)


def _split(override_dirname: str) -> list[str]:
    """The overrides of an `override_dirname`: a comma inside a value (`crop_size=[64,64]`)
    does not start a new one."""
    parts: list[str] = []
    for piece in override_dirname.split(","):
        if parts and not _KEY.match(piece):
            parts[-1] += "," + piece
        else:
            parts.append(piece)
    return parts


def _named(overrides: list[str], written: str, swept: set[str]) -> str:
    """`run_name` of `overrides` (swept: the keys a sweep varies); `written` is what the hash
    is of."""
    pairs = [o.partition("=")[::2] for o in overrides]
    keys = short_keys([override_key(k) for k, _ in pairs])
    order = sorted(range(len(pairs)), key=lambda i: name_order(pairs[i][0], swept))
    parts = [
        f"{keys[i]}={_short_value(pairs[i][1], keys[i])}" if "=" in overrides[i] else overrides[i]
        for i in order
    ]
    readable = ""
    for part in map(_safe, parts):
        if len(readable) + len(part) + 1 > READABLE:
            break
        readable = f"{readable},{part}" if readable else part
    if readable == written and not readable.startswith("."):
        return readable
    # a first override too long for a name is cut; no name may be hidden (`.x`)
    readable = (readable or _safe(parts[0])[:READABLE]).lstrip(".")
    digest = hashlib.sha1(written.encode()).hexdigest()[:8]
    return f"{readable}-{digest}" if readable else digest


def name_order(key: str, swept: Collection[str] = ()) -> tuple[int, int, str]:
    """Where an override goes in a name (and a column in `seglab report`): group choices,
    swept keys, the telling sections, other keys, housekeeping; alphabetical within each."""
    bare = override_key(key)
    if BULKY.search(bare):
        return 5, 0, bare
    if HOUSEKEEPING.search(bare):
        return 4, 0, bare
    if bare in MODEL_GROUPS:
        return 0, MODEL_GROUPS.index(bare), bare
    if bare in _groups():
        return 0, len(MODEL_GROUPS), bare
    if key in swept or bare in swept:
        return 1, 0, bare
    section = bare.split(".", 1)[0]
    return (2, TELLING.index(section), bare) if section in TELLING else (3, 0, bare)


@functools.cache
def _groups() -> frozenset[str]:
    """seglab's config groups (conf/'s folders): `model=...`, `experiment=...`."""
    return frozenset(p.name for p in CONF_DIR.iterdir() if p.is_dir())


def _safe(part: str) -> str:
    """An override as a piece of a file name: no brackets or quotes, other characters a path
    must not hold as `_`."""
    return _UNSAFE.sub("_", re.sub(r"[\[\]'\"]", "", part)).strip("_") or "_"


def short_keys(keys: list[str]) -> list[str]:
    """Each dotted key as its shortest tail that no other key of the set ends with
    (`optim_wrapper.optimizer.lr` -> `lr`; two `.interval`s keep a component more)."""
    short = []
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            tail = ".".join(parts[-n:])
            if not any(o != key and (o == tail or o.endswith("." + tail)) for o in keys):
                break
        short.append(tail)
    return short


def _short_value(value: str, key: str = "") -> str:
    """Numbers with more than 3 significant digits as 3 (an Optuna trial's
    0.0012345678901234567 -> 0.00123), sizes as 64x64; masked secrets as they are; a zoo
    experiment as its model (`deeplabv3plus/deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024`
    -> `deeplabv3plus_r18-d8`), so that it fits beside what else the run changes."""
    if MASKED.fullmatch(value):
        return value
    if key == "experiment":
        return _AFTER_MODEL.sub("", value.rsplit("/", 1)[-1]) or value
    value = _FLOAT.sub(lambda m: min(m[0], f"{float(m[0]):.3g}", key=len), value)
    # a size as sizes are written: [64,64] -> 64x64
    return _SIZE.sub(lambda m: "x".join(n.strip() for n in m[1].split(",")), value)


def fixed_keys(task_overrides: Sequence[str]) -> list[str]:
    """The keys a sweep's command line sets to one value (not swept): its jobs' directory
    names leave them out, the sweep's name holds them."""
    parsed = OverridesParser.create().parse_overrides(list(task_overrides))
    return [o.key_or_group for o in parsed if not o.is_sweep_override()]


def command_sweep_name() -> str:
    """`${sweep_name:}` (conf/config.yaml `hydra.sweep.dir`): `sweep_name` of the task overrides
    of the Hydra config being resolved. Resolved once, on the sweep's own config
    (RunDirCallback.on_multirun_start); its jobs get the plain value."""
    return sweep_name(OmegaConf.to_container(HydraConfig.get().overrides.task, resolve=False))


def job_sweep_name() -> str:
    """The name of the sweep the current Hydra job belongs to: its sweep directory's, which
    `sweep_name` gave it unless the command set `hydra.sweep.dir` itself."""
    return Path(HydraConfig.get().sweep.dir).name
