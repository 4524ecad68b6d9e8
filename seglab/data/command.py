"""`seglab data SUBCOMMAND ...`: prepare, check, palette (see seglab/cli.py USAGE)."""

from __future__ import annotations

from collections.abc import Sequence

from seglab.errors import ConfigError

SUBCOMMANDS = ("prepare", "check", "palette")


def data_command(args: Sequence[str]) -> None:
    if not args or args[0] not in SUBCOMMANDS:
        given = f"{args[0]!r}" if args else "nothing"
        raise ConfigError(
            f"seglab data: got {given}; expected a subcommand: {', '.join(SUBCOMMANDS)} "
            "(seglab data --help)"
        )
    name, rest = args[0], list(args[1:])
    if name == "prepare":
        from seglab.data.prepare import prepare_command

        prepare_command(rest)
    elif name == "check":
        from seglab.data.inventory import check_command

        check_command(rest)
    else:
        from seglab.data.palette import palette_command

        palette_command(rest)
