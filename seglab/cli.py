"""The `seglab` command: train, export, report, test, infer, deploy, env (see USAGE)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence

from seglab.errors import ConfigError, exit_with_error
from seglab.masking import masked_stderr, remember_secrets

USAGE = """usage: seglab [train] [HYDRA_FLAGS] [OVERRIDES]  train (same as python -m seglab ...)
       seglab export [OVERRIDES] [out=PATH]      write the mmseg config (stdout without out=)
       seglab report DIR [DIR ...] [out=DIR]      compare the runs of sweeps and run directories
       seglab compare A B [out=DIR]               two configurations over seeds: beyond noise?
       seglab test run_dir=DIR [checkpoint=PATH] [tta=true] [show_dir=PATH] [KEY=VALUE ...]
       seglab infer checkpoint=PATH image=PATH out=DIR [device=cuda:0] [config=PATH]
       seglab infer model=DIR/model.onnx image=PATH out=DIR [device=cuda]  an exported model
       seglab deploy RUN_DIR [out=DIR] [images=PATH] [tolerance=0.001]  model.onnx, checked
       seglab list [PATTERN ...]                  upstream's configs, as experiment=FAMILY/NAME
       seglab import FILE.py [out=PATH]           a mmseg config of your own as an experiment
       seglab data prepare NAME SOURCE [out=DIR]   a public data set's downloads, converted
       seglab data check [OVERRIDES]              every data file: counts, classes, sizes, weights
       seglab data palette LABELS out=DIR [palette=...]  colour masks to class-index masks
       seglab env                                 check the installation
       seglab COMMAND --help                      one command's usage

Hydra's help for training (every group option, the composed config, its flags):
`seglab train --help`; Hydra's own flags (-m, --cfg job, -c, ...): `seglab --hydra-help`."""

# what `seglab COMMAND --help` prints below the command's line in USAGE
COMMAND_HELP = {
    "train": "OVERRIDES are GROUP=OPTION (model=pspnet_r50-d8) and KEY=VALUE\n"
    "(optim_wrapper.optimizer.lr=0.005); -m sweeps comma lists. Hydra's help follows.",
    "export": "OVERRIDES as for train; out=PATH writes the mmseg config there (a .py file),\n"
    "which plain mmseg trains with `python tools/train.py PATH`.",
    "report": "DIR: a sweep directory, a run directory or outputs/runs; several in one table.\n"
    "Prints the table (a column per setting that differs, seeds folded into mean ± std\n"
    "and a 95% confidence interval) and writes report.csv, report.md, report.png and\n"
    "report.html (open it in a browser: sortable, curves, per-class IoU, predictions) in\n"
    "DIR, in outputs/reports/NAME for several, or in out=DIR.",
    "compare": "A and B: two directories, each one configuration over seeds, or one directory\n"
    "and two KEY=VALUE selections of its runs (seglab compare SWEEP model=a model=b).\n"
    "Prints the mIoU difference with its 95% confidence interval and Welch's t-test over\n"
    "seeds, then the per-class IoU differences, largest first; writes compare.md/.csv.",
    "test": "Tests a run's last checkpoint (checkpoint=PATH: another one) on the test split\n"
    "with the run's config.py; writes test_metrics.json (test_metrics_tta.json with\n"
    "tta=true, multi-scale and flip). show_dir=PATH: ground truth | prediction per image,\n"
    "as PATH/NAME.png. KEY=VALUE changes a key of the run's config\n"
    "(test_dataloader.batch_size=4); +KEY=VALUE adds one it lacks.",
    "infer": "image= is one image or a folder of them. Writes out/NAME.png (overlay) and\n"
    "out/NAME_labels.png (class index per pixel) per image. config= defaults to the\n"
    "checkpoint's folder's config.py; opacity=0.5 is the overlay's. model=DIR/model.onnx\n"
    "(seglab deploy's) runs it on ONNX Runtime instead, with DIR/preprocess.json.",
    "deploy": "Writes OUT/model.onnx (default OUT: RUN_DIR/deploy; torch's ONNX exporter) and\n"
    "OUT/preprocess.json, once the graph segments sample images of the run's validation set\n"
    "(images=PATH: yours) as the PyTorch model does: max |logit difference| at most\n"
    "tolerance=0.001 of the logit range and classes agreeing on agreement=0.999 of the pixels.\n"
    "checkpoint=PATH: another than the run's last; format=onnx is the only format.",
    "list": "Each PATTERN is a part of the name that must appear (segformer ade20k). Columns:\n"
    "upstream's mIoU, crop, iterations, training memory per GPU, what a run needs, and\n"
    "whether its pretrained weights are downloaded when it starts (pretrained=false: none).",
    "import": "Writes experiments/NAME.yaml (or out=PATH), to train as experiment=NAME.",
    "data": "prepare NAME SOURCE runs mmseg's converter for data set NAME (seglab data prepare\n"
    "--help lists them) on its downloads in SOURCE, which it never changes, and writes the\n"
    "layout dataset=NAME reads (out=DIR, default data/NAME). check reads every file of every\n"
    "split the OVERRIDES compose (dataset=..., dataset.data_root=...); workers=N processes.\n"
    "palette writes index masks for colour masks: palette= a dataset option or [[r,g,b],...].",
    "env": "Versions, CUDA and mmcv's compiled ops; exits 2 with the reason when one is wrong.",
}
HELP_FLAGS = ("-h", "--help")


def command_help(name: str) -> str:
    """One command's lines from USAGE, then what its options do."""
    lines = USAGE.removeprefix("usage: ").splitlines()
    prefix = "seglab [train]" if name == "train" else f"seglab {name}"
    found = [line.strip() for line in lines if line.strip().startswith(prefix + " ")]
    usage = "\n       ".join(found)
    return f"usage: {usage}\n\n{COMMAND_HELP[name]}"


def groups_help() -> str:
    """The config groups, their option counts and defaults (conf/config.yaml's list): the
    short form of Hydra's help, whose config dump and option lists run to hundreds of lines."""
    import yaml

    from seglab.config.compose import CONF_DIR, CONFIG_NAME, group_options, groups

    defaults = yaml.safe_load((CONF_DIR / f"{CONFIG_NAME}.yaml").read_text())["defaults"]
    chosen = {k: v for d in defaults if isinstance(d, dict) for k, v in d.items()}
    lines = ["config groups (GROUP=OPTION; `seglab train --help` lists every option):"]
    for group in [g for g in groups() if g != "hydra"]:
        options = group_options(group)
        top = sorted((o for o in options if "/" not in o), key=lambda o: o != chosen.get(group))
        shown = ", ".join(top)
        if len(top) < len(options):  # experiment/: upstream's configs in family folders
            shown += f" and {len(options) - len(top)} upstream configs (`seglab list`)"
        default = f"default {chosen[group]}" if chosen.get(group) else "none by default"
        count = f"{len(options):>3} option{'s' * (len(options) != 1)}"
        lines.append(_clip(f"  {group:<15} {count}, {default}: {shown}"))
    for group, options in _hydra_plugin_groups().items():
        lines.append(_clip(f"  {group:<15} {len(options):>3} options: {', '.join(options)}"))
    return "\n".join(lines)


def _hydra_plugin_groups() -> dict[str, list[str]]:
    """Where and how a sweep runs: Hydra's launcher and sweeper options, from its own config
    loader (the plugins register theirs in its ConfigStore, not under conf/)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from seglab.config.compose import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        return {g: loader.get_group_options(g) for g in ("hydra/launcher", "hydra/sweeper")}


def _clip(line: str, width: int = 100) -> str:
    return line if len(line) <= width else line[: width - 4].rsplit(", ", 1)[0] + ", ..."


def export_command(args: Sequence[str]) -> None:
    from seglab.config.convert import config_text, export_config, write_config
    from seglab.masking import mask_overrides

    out = [a.split("=", 1)[1] for a in args if a.startswith("out=")]
    overrides = [a for a in args if not a.startswith("out=")]
    mm_cfg = export_config(overrides)
    header = f"Written by `seglab export {' '.join(mask_overrides(overrides))}`"
    if out:
        path = write_config(mm_cfg, out[-1], header=header)
        print(f"wrote {path}")
    else:
        sys.stdout.write(config_text(mm_cfg, header))


def report_command(args: Sequence[str]) -> None:
    from seglab.report import command

    command.report_command(args)


def compare_command(args: Sequence[str]) -> None:
    from seglab.report import command

    command.compare_command(args)


def train_command(args: Sequence[str]) -> None:
    from seglab.checks.command_line import check_overrides
    from seglab.config.compose import check_group_choices

    overrides = [a for a in args if "=" in a and not a.startswith("-")]
    check_group_choices(overrides)
    # key typos, typed plugin values, the launcher's machine: one line, before Hydra starts
    shows = {"--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help"}.intersection(args)
    check_overrides(
        overrides, launching=bool({"-m", "--multirun"}.intersection(args)) and not shows
    )
    from seglab.config.resolvers import tuples_as_lists
    from seglab.run import train

    # @hydra.main takes its flags and overrides from sys.argv and nowhere else: set for the
    # run, given back after it (to a test, or any other caller of main in its own process).
    argv = sys.argv
    sys.argv = [argv[0], *args]
    try:
        # Hydra's `--cfg job --resolve` prints the config OmegaConf resolved in place: no tuples
        # and the traceback Hydra prints for an error nobody foresaw masks the job's secrets
        with (
            masked_stderr(),
            tuples_as_lists() if "--resolve" in args else contextlib.nullcontext(),
        ):
            train.main()
    finally:
        sys.argv = argv


def list_command(args: Sequence[str]) -> None:
    from seglab.zoo.index import list_command as run

    run(args)


def import_command(args: Sequence[str]) -> None:
    from seglab.zoo.importer import import_command as run

    run(args)


def data_command(args: Sequence[str]) -> None:
    from seglab.data.command import data_command as run

    run(args)


def env_command(args: Sequence[str]) -> None:
    from seglab.checks.environment import check_environment, ready_line

    lines, problems = check_environment()
    print("\n".join(lines))
    if problems:  # the last line says what is wrong
        raise ConfigError("; ".join(problems))
    print(ready_line())


def evaluate_command(args: Sequence[str]) -> None:
    from seglab.evaluate import evaluate_command as run

    run(args)


def infer_command(args: Sequence[str]) -> None:
    if any(a.startswith("model=") for a in args):  # an exported model.onnx (seglab deploy)
        from seglab.deploy.command import infer_onnx_command as run
    else:
        from seglab.evaluate import infer_command as run
    run(args)


def deploy_command(args: Sequence[str]) -> None:
    from seglab.deploy.command import deploy_command as run

    run(args)


COMMANDS = {
    "train": train_command,
    "export": export_command,
    "report": report_command,
    "compare": compare_command,
    "test": evaluate_command,
    "infer": infer_command,
    "deploy": deploy_command,
    "list": list_command,
    "import": import_command,
    "data": data_command,
    "env": env_command,
}


# words users type for a command seglab names otherwise
COMMAND_SYNONYMS = {
    "predict": "infer",
    "inference": "infer",
    "segment": "infer",
    "eval": "test",
    "evaluate": "test",
    "fit": "train",
    "ls": "list",
    "search": "list",
}


def unknown_command(word: str, rest: Sequence[str]) -> ConfigError | None:
    """A first word that is no command, no flag and no override (`seglab lst segformer`): one
    line with the command meant, else None (the words go to Hydra as overrides)."""
    import difflib

    if word.startswith(("-", "~", "+")) or "=" in word:
        return None
    meant = COMMAND_SYNONYMS.get(word.lower()) or next(
        iter(difflib.get_close_matches(word.lower(), [*COMMANDS, "help"], n=1, cutoff=0.6)), None
    )
    commands = ", ".join(COMMANDS)
    if meant is None:
        return ConfigError(
            f"{word}: no command {word!r}; expected one of {commands}, or KEY=VALUE overrides "
            "to train (seglab --help)"
        )
    return ConfigError(
        f"{word}: no command {word!r}; did you mean `seglab {' '.join([meant, *rest])}`? "
        f"(commands: {commands})"
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    # every line this command prints masks its secrets, also where it is called in a process
    # of its own whose sys.argv is not its command line (a test, a script)
    remember_secrets(args)
    if args and args[0] in ("help", *HELP_FLAGS):  # `seglab help test` is `seglab test --help`
        topic = args[1] if len(args) > 1 and args[1] in COMMANDS else None
        print(command_help(topic) if topic else f"{USAGE}\n\n{groups_help()}")
        return
    if args and args[0] not in COMMANDS:
        unknown = unknown_command(args[0], args[1:])
        if unknown is not None:
            exit_with_error(unknown)
    name = args.pop(0) if args and args[0] in COMMANDS else "train"
    if any(a in HELP_FLAGS for a in args):
        print(command_help(name))
        if name != "train":
            return
        print()  # and Hydra's help for the training command, which exits 0
    try:
        if name in ("test", "infer", "import"):  # training has its own (SeglabRunner)
            from seglab.run.console import quiet_console

            with quiet_console():
                COMMANDS[name](args)
        else:
            COMMANDS[name](args)
    except ConfigError as err:
        exit_with_error(err)
    except BrokenPipeError:  # `seglab list | head`: the reader has all it wanted
        # Python's own advice: no more writes to the closed pipe, also not at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0) from None
