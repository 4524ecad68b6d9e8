"""`seglab data prepare NAME SOURCE [out=DIR] [workers=N]`: a public data set's downloads made
into the layout `dataset=NAME` reads, by the converter script mmsegmentation ships for it.

The converter is the installed mmsegmentation's own (`mmseg/.mim/tools/dataset_converters/`),
run as a process of its own with this Python; what each one needs lies in `recipes`. SOURCE is
never changed: a converter that writes beside its inputs gets a copy of them. Everything is
written into `OUT.partial` (a leftover one from a stopped run is removed first), the result is
listed as the option's dataloaders list it (mmseg's dataset classes: folders, suffixes, split
files) and must hold every split with its labels, then a marker (`.seglab-prepared.json`, the
name and the source) is written and the folder renamed to OUT. Run again, a finished OUT of the
same name and source is kept; an OUT without the marker that holds files is refused.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

import yaml

from seglab import CONF_DIR
from seglab.data.recipes import RECIPES, Recipe, Work, missing_downloads
from seglab.errors import ConfigError

USAGE = "seglab data prepare NAME SOURCE [out=DIR] [workers=N]"
MARKER = ".seglab-prepared.json"  # written last: the folder is whole
SCRATCH = ".seglab-scratch"  # the converters' temporary files, inside OUT.partial
# data set options that need no converter: their download is already the layout
AS_DOWNLOADED = {
    "ade20k": "ADEChallengeData2016.zip",
    "pascal_voc12": "VOCtrainval_11-May-2012.tar (its VOCdevkit/VOC2012)",
}


def prepare_command(args: Sequence[str]) -> None:
    name, source, options = _parse(args)
    recipe = recipe_for(name)
    if not os.path.isdir(source):
        raise ConfigError(f"{source}: no such folder; expected the folder of {name}'s downloads")
    source = Path(source).resolve()
    out = Path(options.get("out") or data_root(name)).resolve()
    workers = _workers(options.get("workers"))
    if is_kept(out, name, source):
        print(f"{out}: {name} already prepared from {source}; kept")
        print(f"train on it: {train_command(name, out)}")
        return
    check_out(out, source)
    check_packages(recipe.packages)
    missing = missing_downloads(recipe, source)
    if missing:
        raise ConfigError(
            f"{source}: no {', '.join(missing)}; expected {name}'s downloads: {recipe.downloads}"
        )
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # a run that stopped half-way
    work = Work(source, partial, partial / SCRATCH, workers)
    work.scratch.mkdir(parents=True)
    if recipe.stage is not None:
        recipe.stage(work)
    run_converter(recipe, work)
    shutil.rmtree(work.scratch)
    splits = list_splits(name, partial)
    note = recipe.after(work) if recipe.after is not None else None
    (partial / MARKER).write_text(json.dumps({"name": name, "source": str(source)}))
    if out.exists():
        out.rmdir()  # empty (check_out)
    partial.rename(out)
    print(f"wrote {out}: {name} from {source}")
    for key, prefix, images, labels in splits:
        print(f"  {key}: {images} images, {labels} labels ({prefix})")
    if note:
        print(f"seglab: warning: {note}", file=sys.stderr, flush=True)
    print(f"train on it: {train_command(name, out)}")


def _parse(args: Sequence[str]) -> tuple[str, str, dict[str, str]]:
    positional = [a for a in args if "=" not in a]
    options = dict(a.split("=", 1) for a in args if "=" in a)
    unknown = sorted(set(options) - {"out", "workers"})
    if len(positional) != 2 or unknown:
        raise ConfigError(f"seglab data prepare {shlex.join(args)}: expected {USAGE}")
    return positional[0], positional[1], options


def _workers(value: str | None) -> int:
    if value is None:
        return os.cpu_count() or 1
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"workers={value}: expected a number of processes, 1 or more")
    return int(value)


def recipe_for(name: str) -> Recipe:
    """The recipe of a data set option, or of a size variant of one (`cityscapes_768x768`:
    the same type and data_root as `cityscapes`)."""
    if name in RECIPES:
        return RECIPES[name]
    option = _option(name)
    for base, recipe in RECIPES.items():
        if option and name.startswith(f"{base}_") and _same_data(option, _option(base)):
            return recipe
    download = AS_DOWNLOADED.get(name)
    hint = f" ({name}'s download is its layout already: {download})" if download else ""
    raise ConfigError(
        f"seglab data prepare {name}: not a data set it prepares{hint}; "
        f"supported: {', '.join(RECIPES)}"
    )


def _option(name: str) -> dict:
    path = CONF_DIR / "dataset" / f"{name}.yaml"
    return (yaml.safe_load(path.read_text()) or {}).get("dataset") or {} if path.is_file() else {}


def _same_data(option: dict, base: dict) -> bool:
    return (option.get("type"), option.get("data_root")) == (
        base.get("type"),
        base.get("data_root"),
    )


def data_root(name: str) -> str:
    """The option's `dataset.data_root` (relative to the working directory, as training reads
    it)."""
    return _option(name)["data_root"]


def is_kept(out: Path, name: str, source: Path) -> bool:
    marker = out / MARKER
    if not marker.is_file():
        return False
    done = json.loads(marker.read_text())
    if done == {"name": name, "source": str(source)}:
        return True
    raise ConfigError(
        f"out={out}: holds {done.get('name')} prepared from {done.get('source')}; expected a "
        "new folder (give another out=)"
    )


def check_out(out: Path, source: Path) -> None:
    if out == source or source in out.parents:
        raise ConfigError(
            f"out={out}: inside {source}, which is never changed; expected a folder outside it"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(
            f"out={out}: exists and holds files seglab did not write; expected a new folder "
            "(move it, or give another out=)"
        )


def check_packages(packages: dict[str, str]) -> None:
    """Each module the converter imports beyond seglab's own (module: its pip name)."""
    for module, pip_name in packages.items():
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"{module} is not installed: pip install {pip_name}")


# The converter runs under this launcher: Pillow 13 writes a palette image made by
# `Image.fromarray(..., mode="P")` (isaid.py's labels) with an empty palette as a 1-bit PNG,
# every class above 0 turned into 1; a grey palette of 256 entries keeps its values. And the
# downloads are files the user did not write: stare.py extracts its tar files unfiltered, where
# a member named `../..` or `/...` (or a link out) would be written anywhere the user may
# write; tarfile's `data` filter refuses such members (zipfile already drops `..` and `/`).
LAUNCHER = """
import runpy, sys, tarfile
tarfile.TarFile.extraction_filter = staticmethod(tarfile.data_filter)
from PIL import Image
_fromarray = Image.fromarray
def fromarray(*args, **kwargs):
    image = _fromarray(*args, **kwargs)
    if image.mode == "P" and not image.getpalette():
        image.putpalette(bytes(v for i in range(256) for v in (i, i, i)))
    return image
Image.fromarray = fromarray
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def converters() -> Path:
    """The installed mmsegmentation's tools/dataset_converters/."""
    spec = importlib.util.find_spec("mmseg")
    return Path(spec.origin).parent / ".mim" / "tools" / "dataset_converters"


def run_converter(recipe: Recipe, work: Work) -> None:
    script = converters() / recipe.converter
    if not hasattr(tarfile, "data_filter"):  # Python 3.10.12 and 3.11.4 brought it
        raise ConfigError(
            f"Python {sys.version.split()[0]} has no tarfile.data_filter, which keeps an "
            "archive's members inside their folder; expected Python 3.10.12, 3.11.4 or newer"
        )
    if not script.is_file():
        raise ConfigError(f"{script}: not in the installed mmsegmentation; expected 1.2.2's")
    # -O: upstream's asserts that the download is whole (voc_aug.py's 10582 images)
    flags = ["-O"] if recipe.optimize else []
    args = recipe.args(work)
    print(f"running mmseg's {shlex.join([str(script), *args])}", flush=True)
    command = [sys.executable, *flags, "-c", LAUNCHER, str(script), *args]
    env = {**os.environ, "TMPDIR": str(work.scratch)}
    done = subprocess.run(command, cwd=work.scratch, env=env, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        last = lines[-1].strip() if lines else "no message"
        raise ConfigError(
            f"mmseg's {recipe.converter} stopped (exit {done.returncode}): {last}; its "
            f"half-written output is in {work.partial}"
        )
    sys.stderr.write(done.stderr)


def list_splits(name: str, root: Path) -> list[tuple[str, str, int, int]]:
    """(dataloader key, image folder, images, labels) of every split `dataset=NAME` reads
    under ROOT, as mmseg's dataset class lists it; a split that is empty or has an image
    without its label stops in one line."""
    from seglab.checks.data_files import listed_splits
    from seglab.config.convert import export_config

    quoted = "'" + str(root).replace("\\", "\\\\").replace("'", "\\'") + "'"
    cfg = export_config([f"dataset={name}", f"dataset.data_root={quoted}"], reference=False)
    rows = []
    for key, dataset, _instance, entries in listed_splits(cfg):
        labels = sum(os.path.isfile(e.get("seg_map_path") or "") for e in entries)
        prefix = (dataset.get("data_prefix") or {}).get("img_path", "")
        ann_file = dataset.get("ann_file")
        rows.append((key, f"{prefix}, {ann_file}" if ann_file else prefix, len(entries), labels))
    return rows


def train_command(name: str, out: Path) -> str:
    return shlex.join(["python", "-m", "seglab", f"dataset={name}", f"dataset.data_root={out}"])
