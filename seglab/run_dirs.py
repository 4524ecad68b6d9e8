"""Where runs and sweeps write: the names of their directories, who holds a run's directory,
and which checkpoint a run resumes.

Every name is a function of the command-line overrides, never of the clock, so the same command
launched again finds its directories (`run_name`):
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

Of `NAME`, `NAME-2`, ... a single run picks one and guards it:
- a new run takes the first that holds no earlier run, claimed with an exclusive lock
  (`flock` on `NAME/.seglab-lock`) that its process holds until the run ends, so two identical
  commands started together train into two directories;
- `resume=true` takes the newest of them and `resume=PATH` the one named; a run that another
  live process holds is refused in one line;
- the checkpoint a resume starts from is the run's own (a copied run directory's
  `last_checkpoint` still names the original's files), and an empty or truncated one gives way
  to the newest intact `iter_*.pth`.
The kernel drops a lock when its process dies, so a killed run never blocks its own resume.
Only "would block" from `flock` means another process holds a directory; a file system without
`flock` (Lustre mounted without `-o flock`: ENOSYS), a lock file that cannot be opened (a
directory of that name) or a run directory that cannot be made (a read-only `outputs/`) is one
line, never a search on to the next name; and that search stops after MAX_NUMBERED names.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import fcntl
import functools
import hashlib
import os
import re
import shutil
import traceback
import zipfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Transformer
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import InterpolationResolutionError

from seglab.errors import ConfigError, exit_with_error
from seglab.masking import (
    HYDRA_RECORD,
    MASKED,
    mask_hydra_files,
    mask_overrides,
    mask_text,
    unset_variables,
)

LOCK_FILE = ".seglab-lock"
# a failed job's full traceback, beside its log (RunDirCallback.on_job_end)
TRACEBACK_FILE = "traceback.txt"
# files that do not make a directory a run: Hydra's `.hydra/` alone is what a command stopped
# by a config error leaves, and the corrected command takes that directory again (a traceback
# alone: a job that failed before it wrote anything)
NOT_A_RUN = {".hydra", LOCK_FILE, TRACEBACK_FILE}
_held: dict[str, int] = {}  # run directory -> descriptor of the lock this process holds
# what `flock(LOCK_NB)` answers when another process holds the lock (EACCES: as fcntl's
# documentation allows); any other error is the file system's, not a run's
HELD = frozenset({errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES})
# a new run takes NAME, NAME-2, ... up to NAME-MAX_NUMBERED, then stops with one line
MAX_NUMBERED = 500
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]")


# a name's readable part stops at a whole override within this many characters; a name that is
# not the overrides as written ends in `-` and a hash of them
READABLE = 80
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
# keys that change how a run reports, saves or loads, not what it learns: named last
HOUSEKEEPING = re.compile(
    r"^(default_hooks|log_processor|log_level|env_cfg|visualizer|wandb)(\.|$)"
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
    keys = short_keys([k.lstrip("+~") for k, _ in pairs])
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
    bare = key.lstrip("+~")
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


def holds_run(path: str | os.PathLike) -> bool:
    """Whether a run wrote into `path` (a log, a checkpoint, a config)."""
    return os.path.isdir(path) and bool(set(os.listdir(path)) - NOT_A_RUN)


def hold(path: str | os.PathLike) -> bool:
    """Take `path`'s lock for this process; False when another live process holds it.

    A directory that cannot be made, a lock file that cannot be opened, or a `flock` that
    fails for another reason than the lock being held (ENOSYS, ENOLCK, EIO...) is a
    ConfigError: going on to the next name would fail the same way, for ever."""
    key = os.path.abspath(path)
    if key in _held:
        return True
    lock = os.path.join(key, LOCK_FILE)
    try:
        os.makedirs(key, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            f"run directory {key}: cannot be made ({os_reason(err)}); make {os.path.dirname(key)} "
            "a folder you can write to, or start seglab in another directory (runs go to "
            "./outputs)"
        ) from None
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise ConfigError(
            f"run lock {lock}: cannot be opened ({os_reason(err)}); remove whatever is in its "
            "place, or make the run directory writable"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in HELD:
            return False
        raise ConfigError(
            f"run lock {lock}: flock failed ({os_reason(err)}): this file system cannot lock "
            "files; mount it with flock support (Lustre: -o flock) or start seglab in a "
            "directory on a local disk (runs go to ./outputs)"
        ) from None
    _held[key] = fd
    return True


def drop_if_not_a_run(path: str | os.PathLike) -> None:
    """Remove the directory of a run this process holds and that a refusal stopped before
    it wrote anything (Hydra's `.hydra/`, the lock): a refused command leaves no directory
    that `seglab report` would list as a run. A directory that holds anything else stays."""
    key = os.path.abspath(path)
    if key not in _held or holds_run(key):
        return
    shutil.rmtree(os.path.join(key, ".hydra"), ignore_errors=True)
    for name in (TRACEBACK_FILE, LOCK_FILE):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(key, name))
    release(key)
    with contextlib.suppress(OSError):  # not empty: something appeared meanwhile, kept
        os.rmdir(key)


def os_reason(err: OSError) -> str:
    """An OSError as `Function not implemented, ENOSYS`: the reason, then its name."""
    name = errno.errorcode.get(err.errno, str(err.errno)) if err.errno else ""
    reason = err.strerror or str(err)
    return f"{reason}, {name}" if name else reason


def release(path: str | os.PathLike) -> None:
    """Give up this process's lock on `path` (the run ended)."""
    fd = _held.pop(os.path.abspath(path), None)
    if fd is not None:
        os.close(fd)  # closing the last descriptor of the file drops the flock


def release_all() -> None:
    for path in list(_held):
        release(path)


def choose_run_dir(root: str, name: str, resume: Any) -> str:
    """The directory a single run with this name trains in (see the module docstring)."""
    base = os.path.join(root, name)
    if isinstance(resume, str) and resume.lower() not in ("true", "false"):
        return _given_run(resume)
    candidates = _numbered(base)
    if resume:
        earlier = [p for p in candidates if holds_run(p)]
        if not earlier:
            return base  # nothing to resume: train.py says so, naming the nearest runs
        newest = earlier[-1]
        if not hold(newest):
            raise ConfigError(
                f"resume=true: {newest} is being trained by another process right now; "
                "wait for it to end (or stop it), or drop resume=true to start a new run"
            )
        return newest
    for path in candidates:
        if os.path.abspath(path) in _held:
            return path  # this process claimed it earlier (the value is read more than once)
    for n in range(1, MAX_NUMBERED + 1):  # the first that holds no run and that no other
        path = base if n == 1 else f"{base}-{n}"  # process claimed meanwhile
        if not holds_run(path) and hold(path):
            return path
    raise ConfigError(
        f"run directory {base}: {name} to {name}-{MAX_NUMBERED} all hold earlier runs or are "
        "being trained; move or remove old runs, or continue the newest with resume=true"
    )


def _numbered(base: str) -> list[str]:
    """`base`, `base-2`, ... up to the last that exists."""
    paths = [base]
    n = 2
    while os.path.isdir(f"{base}-{n}"):
        paths.append(f"{base}-{n}")
        n += 1
    return paths


def _given_run(path: str) -> str:
    if not holds_run(path):
        raise ConfigError(
            f"resume={path!r}: not a run directory; expected a directory a seglab run wrote "
            "(outputs/runs/NAME), or resume=true to continue the run of these overrides"
        )
    if not hold(path):
        raise ConfigError(
            f"resume={path!r}: the run is being trained by another process right now; wait "
            "for it to end (or stop it)"
        )
    return os.path.abspath(path)


def checkpoint_iteration(path: Path) -> int:
    """The iteration an mmengine checkpoint's name says it holds (`iter_20.pth`), else -1."""
    match = re.search(r"(\d+)\.pth$", path.name)
    return int(match.group(1)) if match else -1


def intact(path: Path) -> bool:
    """A checkpoint file torch can open: torch's zip format with its closing directory (a copy
    or a write stopped half way has none)."""
    return path.is_file() and path.stat().st_size > 0 and zipfile.is_zipfile(path)


def resume_checkpoint(run_dir: Path) -> tuple[Path | None, str | None]:
    """(the run's newest intact checkpoint, why it is not the one `last_checkpoint` names or
    None when it is); (None, None) when the run has none."""
    run_dir = Path(run_dir).resolve()
    pointer = run_dir / "last_checkpoint"
    text = pointer.read_text().strip() if pointer.is_file() else ""
    named = own_file(run_dir, Path(text)) if text else None
    if named is not None and intact(named):
        return named, None
    saved = sorted(
        (p for p in run_dir.glob("*.pth") if intact(p)), key=checkpoint_iteration, reverse=True
    )
    if not saved:
        return None, None
    if named is None and not pointer.is_file():
        why = "there is no last_checkpoint"
    elif named is None:
        why = "last_checkpoint is empty"
    elif not named.is_file():
        why = f"last_checkpoint names {named}, which does not exist"
    else:
        why = f"last_checkpoint names {named.name}, which is truncated"
    return saved[0], why


def own_file(run_dir: Path, named: Path) -> Path:
    """`named` as a file of `run_dir`: a run directory copied or moved elsewhere still names its
    original's files in `last_checkpoint`; its own file of that name is the one meant, and
    where the copy lacks it, not the original's (mmengine writes only its own work_dir's
    checkpoints there): the newest of the copy's own is taken instead."""
    return run_dir / named.name if named.parent != run_dir else named


def nearest_runs(run_dir: Path, n: int = 3) -> list[str]:
    """The runs beside `run_dir` that have a checkpoint, the most similar names first."""
    root = Path(run_dir).parent
    runs = (
        [p.name for p in root.iterdir() if (p / "last_checkpoint").is_file()]
        if root.is_dir()
        else []
    )
    return [str(root / name) for name in difflib.get_close_matches(run_dir.name, runs, n, 0.0)]


def no_checkpoint_error(run_dir: Path, resume: Any) -> ConfigError:
    nearest = nearest_runs(run_dir)
    hint = (
        f"nearest runs with a checkpoint: {', '.join(nearest)}; continue one with resume=PATH"
        if nearest
        else f"no run under {Path(run_dir).parent} has one"
    )
    value = str(resume).lower() if isinstance(resume, bool) else resume
    return ConfigError(
        f"resume={value}: {run_dir} has no checkpoint (no earlier run of these overrides saved "
        f"one); {hint}, or drop resume to start a new run"
    )


class RunDirCallback(Callback):
    """Names the directories of a run or a sweep before Hydra creates them.

    A single run: `hydra.run.dir` is a resolver that claims a directory; resolved here once,
    it becomes a plain value that Hydra then reads, and a refusal is one line. (Under torchrun,
    TorchrunCallback did this on rank 0.)

    A sweep (Hydra calls on_multirun_start before it builds the sweeper): `hydra.sweep.dir` is
    resolved from the sweep's task overrides and set as a plain value, which the sweepers and
    launchers read from this config; and since every job's config is composed again from the
    Hydra overrides held here plus the job's own, two are added there: the sweep directory,
    and the fixed keys as `hydra.job.config.override_dirname.exclude_keys`, so that a job's
    `override_dirname` (its `hydra.sweep.subdir`) names what varies. Both are plain values in
    the config, so a job in another process (joblib, submitit, gpu_pool) reads them too.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_variables(config)
        HydraConfig.instance().set_config(config)  # `${hydra:...}` reads it (and locks it)
        try:
            run_dir = OmegaConf.select(config, "hydra.run.dir")
        except InterpolationResolutionError as err:
            cause = _config_error(err)
            if cause is not None:
                exit_with_error(cause)
            raise
        with read_write(config.hydra), open_dict(config.hydra):
            config.hydra.run.dir = str(run_dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.launcher.get("_target_") in SAME_ENVIRONMENT:
            _check_variables(config)
        hydra_config, readonly = HydraConfig.instance().cfg, config.hydra._get_node_flag("readonly")
        HydraConfig.instance().set_config(config)  # `${sweep_name:}` reads it (and locks it)
        try:  # Hydra would turn an exception here into a warning, and sweep on
            sweep_dir = str(OmegaConf.select(config, "hydra.sweep.dir"))
            task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
            exclude = [
                *config.hydra.job.config.override_dirname.exclude_keys,
                *fixed_keys(task),
            ]
        except Exception as err:  # noqa: BLE001  (one line, as for any bad input)
            first_line = (str(err).strip().splitlines() or [""])[0]
            exit_with_error(_config_error(err) or f"hydra.sweep.dir: {first_line}")
        finally:  # as the sweeper expects them (each job sets its own)
            HydraConfig.instance().cfg = hydra_config
            OmegaConf.set_readonly(config.hydra, readonly)
        pinned = {
            "hydra.sweep.dir": sweep_dir,
            "hydra.job.config.override_dirname.exclude_keys": list(dict.fromkeys(exclude)),
        }
        with read_write(config.hydra), open_dict(config.hydra):
            config.hydra.sweep.dir = sweep_dir
            for key, value in pinned.items():
                # as Hydra writes a job's overrides: escaped where the grammar needs it
                config.hydra.overrides.hydra.append(f"{key}={Transformer.str(value)}")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Hydra has just written its record of the job (`.hydra/`) and, a sweep's sweeper, of
        the sweep (multirun.yaml), both as the command wrote them: every secret value in them
        is masked here, before the job runs (seglab/masking.py `mask_record`)."""
        task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
        record = []
        if config.hydra.output_subdir is not None:
            subdir = Path(config.hydra.runtime.output_dir) / config.hydra.output_subdir
            record += [subdir / name for name in HYDRA_RECORD]
        if config.hydra.mode == RunMode.MULTIRUN:
            record.append(Path(config.hydra.sweep.dir) / "multirun.yaml")
        mask_hydra_files(record, task)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """A sweep whose jobs all finished in an earlier launch starts none: its multirun.yaml,
        written again, is masked here."""
        task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
        mask_hydra_files([Path(config.hydra.sweep.dir) / "multirun.yaml"], task)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """A failed job keeps its full traceback in its directory (the sweep's summary and
        `seglab report` point to it); one that finishes drops a stale one. Hydra calls this in
        the job's own process, whatever the launcher, where the traceback still exists."""
        if job_return.hydra_cfg is None:
            return
        path = Path(job_return.hydra_cfg.hydra.runtime.output_dir) / TRACEBACK_FILE
        error = job_return._return_value  # return_value would re-raise it
        # (a trial Optuna's pruner stopped did not fail: seglab's Optuna sweeper says so)
        if isinstance(error, BaseException) and type(error).__name__ != "TrialPruned":
            path.write_text(mask_text("".join(traceback.format_exception(error))))
        elif path.parent.is_dir():
            path.unlink(missing_ok=True)


# the launchers whose jobs run with the sweep's own environment; another one's jobs may get
# variables of their own (gpu_pool: CUDA_VISIBLE_DEVICES, submitit: SLURM_*), and a job that
# lacks one fails with its one line
SAME_ENVIRONMENT = {
    "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
    "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
}


def _check_variables(config: DictConfig) -> None:
    """One line, before anything reads them, for the environment variables the command's
    overrides or its config read (`${oc.env:VAR}`, no default) that are not set, in this
    process or by `hydra.job.env_set`: OmegaConf would stop the run with a traceback where the
    value is first read."""
    task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    values = OmegaConf.to_container(config, resolve=False)
    config_values = {k: v for k, v in values.items() if k != "hydra"}
    provided = [str(name) for name in (config.hydra.job.get("env_set") or {})]
    missing = unset_variables(task, config_values, provided)
    if not missing:
        return
    names = list(dict.fromkeys(var for _, var in missing))
    reads = "; ".join(f"{key} reads ${{oc.env:{var}}}" for key, var in missing)
    first = names[0]
    exit_with_error(
        f"{reads}: environment variable{'s' * (len(names) > 1)} {', '.join(names)} "
        f"{'are' if len(names) > 1 else 'is'} not set; export {'them' if len(names) > 1 else 'it'}"
        f" before seglab starts (export {first}=VALUE), or give a default "
        f"(${{oc.env:{first},VALUE}})"
    )


def _config_error(err: BaseException | None) -> ConfigError | None:
    """The ConfigError a resolver raised, from the chain OmegaConf wraps it in."""
    while err is not None and not isinstance(err, ConfigError):
        err = err.__cause__ or err.__context__
    return err
