"""The error types seglab raises for bad input, and how one ends a command: a single line."""

from __future__ import annotations

import errno
import sys
from typing import NoReturn

from seglab.masking import mask_text


class ConfigError(ValueError):
    """Bad user input, found before any training time is spent.

    The message names the key, the value and what was expected, on one line.
    """


class DataError(ConfigError):
    """A data file that cannot be used as it is, named with the reason, on one line.

    Raised while a batch is loaded, often in a data loader worker: torch re-raises it in the
    main process with the worker's traceback as its message, of which only seglab's own last
    line is kept, so that the user still sees one line.
    """

    def __init__(self, message: str) -> None:
        marker = f"{type(self).__name__}: "
        lines = [line for line in str(message).splitlines() if line.strip()]
        if len(lines) > 1 and lines[0].startswith("Caught ") and marker in lines[-1]:
            message = lines[-1].split(marker, 1)[1]
        super().__init__(message)


def exit_with_error(message: object) -> NoReturn:
    """End the command as every bad input ends it: one `seglab: error:` line, exit code 2.

    The message names values as they resolved, which may be secrets (an `${oc.env:VAR}`
    path, a URL with a token): each one seglab knows of is masked (seglab/masking.py).
    """
    print(f"seglab: error: {mask_text(message)}", file=sys.stderr, flush=True)
    raise SystemExit(2) from None


def os_reason(err: OSError) -> str:
    """An OSError as `Function not implemented, ENOSYS`: the reason, then its name."""
    name = errno.errorcode.get(err.errno, str(err.errno)) if err.errno else ""
    reason = err.strerror or str(err)
    return f"{reason}, {name}" if name else reason


def is_pruned(error: object) -> bool:
    """Whether `error` is Optuna's TrialPruned: a trial the pruner stopped, which did not fail.
    Optuna is not imported for this: such an error exists only where Optuna already is."""
    optuna = sys.modules.get("optuna")
    return optuna is not None and isinstance(error, optuna.TrialPruned)
