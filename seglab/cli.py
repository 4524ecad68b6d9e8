"""The `seglab` command: train, export, report, test, infer, env (see USAGE)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from seglab.errors import ConfigError, exit_with_error

USAGE = """usage: seglab [train] [HYDRA_FLAGS] [OVERRIDES]  train (same as python -m seglab ...)
       seglab export [OVERRIDES] [out=PATH]      write the mmseg config (stdout without out=)
       seglab report DIR                          compare the runs of a sweep or run directory
       seglab test run_dir=DIR [checkpoint=PATH] [tta=true] [show_dir=PATH] [KEY=VALUE ...]
       seglab infer checkpoint=PATH image=PATH out=DIR [device=cuda:0] [config=PATH]
       seglab list [PATTERN ...]                  upstream's configs, as experiment=FAMILY/NAME
       seglab import FILE.py [out=PATH]           a mmseg config of your own as an experiment
       seglab env                                 check the installation"""


def export_command(args: Sequence[str]) -> None:
    from seglab.convert import config_text, overrides_to_config, write_config
    from seglab.masking import mask_overrides

    out = [a.split("=", 1)[1] for a in args if a.startswith("out=")]
    overrides = [a for a in args if not a.startswith("out=")]
    mm_cfg = overrides_to_config(overrides)
    header = f"Written by `seglab export {' '.join(mask_overrides(overrides))}`"
    if out:
        path = write_config(mm_cfg, out[-1], header=header)
        print(f"wrote {path}")
    else:
        sys.stdout.write(config_text(mm_cfg, header))


def report_command(args: Sequence[str]) -> None:
    from seglab.report import report

    if len(args) != 1:
        raise ConfigError(f"report {' '.join(args)}: expected one sweep or run directory")
    try:
        print(report(args[0]), end="")
    except FileNotFoundError as err:
        raise ConfigError(str(err)) from None


def train_command(args: Sequence[str]) -> None:
    from seglab.compose import check_group_choices, check_plugin_values

    overrides = [a for a in args if "=" in a and not a.startswith("-")]
    check_group_choices(overrides)
    check_plugin_values(overrides)  # a sweeper's or launcher's value, typed in ConfigStore
    from seglab import train

    # @hydra.main takes its flags and overrides from sys.argv and nowhere else: set for the
    # run, given back after it (to a test, or any other caller of main in its own process).
    argv = sys.argv
    sys.argv = [argv[0], *args]
    try:
        train.main()
    finally:
        sys.argv = argv


def list_command(args: Sequence[str]) -> None:
    from seglab.zoo_index import list_command as run

    run(args)


def import_command(args: Sequence[str]) -> None:
    from seglab.config_import import import_command as run

    run(args)


def env_command(args: Sequence[str]) -> None:
    from seglab.environment import check_environment

    lines, problems = check_environment()
    print("\n".join(lines))
    if problems:
        raise ConfigError("; ".join(problems))


def evaluate_command(args: Sequence[str]) -> None:
    from seglab.evaluate import evaluate_command as run

    run(args)


def infer_command(args: Sequence[str]) -> None:
    from seglab.evaluate import infer_command as run

    run(args)


COMMANDS = {
    "train": train_command,
    "export": export_command,
    "report": report_command,
    "test": evaluate_command,
    "infer": infer_command,
    "list": list_command,
    "import": import_command,
    "env": env_command,
}


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("help", "-h", "--help") and len(args) == 1:
        print(USAGE)
        args = ["--help"]
    command = COMMANDS[args.pop(0)] if args and args[0] in COMMANDS else train_command
    try:
        command(args)
    except ConfigError as err:
        exit_with_error(err)
