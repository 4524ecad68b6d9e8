"""What a run prints to the terminal: its progress, not mmengine's reference dumps.

mmengine's Runner logs the full environment, the whole config and the hook table at INFO, and
mmseg and mmengine emit deprecation warnings a user cannot act on; on a terminal they bury the
loss lines. seglab's Runner puts a filter on the console handler of mmengine's logger only, so
the run's log file keeps every record; Python warnings raised during the run are logged through
the same logger, so known ones reach the file only and the others both.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from mmengine.logging import MMLogger
from mmengine.runner import Runner

# the start of the messages that are reference material, for the log file
FILE_ONLY_PREFIXES = (
    "\n" + "-" * 60 + "\nSystem environment:",  # Runner._log_env
    "Config:\n",  # Runner._log_env
    "Hooks will be executed in the following order:",  # Runner.__init__
)
# warnings mmseg 1.2.2 / mmengine 0.10.7 give on every run, about their own code
KNOWN_WARNINGS = (
    "``build_loss`` would be deprecated soon",
    "Default ``avg_non_ignore`` is False",
    "The draw is False, it means that the hook for visualization will not take effect",
    "`reduce_zero_label` will be deprecated",
    '"FileClient" will be deprecated in future',
    '"HardDiskBackend" is the alias of "LocalBackend"',
    "The prefix is not set in metric class",
)


class FileOnlyFilter(logging.Filter):
    """Keeps the dumps and the known warnings off a handler (the console)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            message.startswith(FILE_ONLY_PREFIXES) or any(k in message for k in KNOWN_WARNINGS)
        )


def is_console(handler: logging.Handler) -> bool:
    # FileHandler is a StreamHandler too
    return isinstance(handler, logging.StreamHandler) and not isinstance(
        handler, logging.FileHandler
    )


class SeglabRunner(Runner):
    """mmengine's Runner whose logger shows the dumps on its file handler only.

    The Runner logs the dumps in its constructor, right after `build_logger`: the filter goes on
    there, before any of them.
    """

    def build_logger(self, log_level: int | str = "INFO", log_file: str | None = None, **kwargs):
        logger = super().build_logger(log_level=log_level, log_file=log_file, **kwargs)
        for handler in logger.handlers:
            if is_console(handler) and not any(
                isinstance(f, FileOnlyFilter) for f in handler.filters
            ):
                handler.addFilter(FileOnlyFilter())
        return logger


@contextmanager
def warnings_to_run_log(experiment_name: str) -> Iterator[None]:
    """Within the block, a Python warning is logged by the run's mmengine logger (named after
    the experiment) once the Runner has built it, whose console filter then decides whether the
    terminal shows it; before that, Python shows it as usual."""
    with warnings.catch_warnings():  # restores showwarning afterwards
        shown = warnings.showwarning

        def log_warning(message, category, filename, lineno, file=None, line=None) -> None:
            logger = MMLogger.get_current_instance()
            if not logger.instance_name.startswith(experiment_name):
                shown(message, category, filename, lineno, file, line)
                return
            logger.warning(f"{category.__name__}: {message} ({filename}:{lineno})")

        warnings.showwarning = log_warning
        yield
