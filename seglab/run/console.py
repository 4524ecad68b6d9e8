"""What a run prints to the terminal: its progress, not mmengine's reference dumps.

mmengine's Runner logs the full environment, the whole config and the hook table at INFO, and
mmseg and mmengine emit deprecation warnings a user cannot act on; on a terminal they bury the
loss lines. seglab's Runner puts a filter on the console handler of mmengine's logger only, so
the run's log file keeps every record; Python warnings raised during the run are logged through
the same logger, so known ones reach the file only and the others both.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from mmengine.logging import MMLogger
from mmengine.runner import Runner

from seglab.masking import escape_control_characters, mask_text

# the start of the messages that are reference material, for the log file
FILE_ONLY_PREFIXES = (
    "\n" + "-" * 60 + "\nSystem environment:",  # Runner._log_env
    "Config:\n",  # Runner._log_env
    "Hooks will be executed in the following order:",  # Runner.__init__
    # one line per parameter a `paramwise_cfg.custom_keys` entry matches (the optimizer's
    # constructor): 207 for SegFormer-B0, thousands for larger backbones
    "paramwise_options -- ",
    # the Runner's experiment name at each data-loader epoch's end (LoggerHook), and a resumed
    # run's skipping of the batches it had trained (IterBasedTrainLoop)
    "Exp name: ",
    "Advance dataloader ",
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
    # mmseg's inferencer builds its pipeline outside mmseg's scope, and its visualizer without a
    # directory to save to: mmengine says so on every `seglab infer`
    'Failed to search registry with scope "mmseg"',
    "Failed to add <class 'mmengine.visualization.vis_backend.LocalVisBackend'>",
    # mmengine's check for installed packages (`seglab import` of a config with `mmseg::`)
    "pkg_resources is deprecated as an API",
    # a CPU run of a config with SyncBN (most of the zoo): the model is built with plain BN
    "Distributed training is not used, all SyncBatchNorm",
)


class FileOnlyFilter(logging.Filter):
    """Keeps the dumps and the known warnings off a handler (the console)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            message.startswith(FILE_ONLY_PREFIXES) or any(k in message for k in KNOWN_WARNINGS)
        )


class EscapeControlCharacters(logging.Filter):
    """Writes control characters in a record as escapes (`\\x1b`): a checkpoint's keys or a
    file name a user did not choose must not move the cursor, recolour or retitle a terminal
    that shows the log or `cat`s the log file. And masks every secret seglab knows of
    (seglab/masking.py `mask_text`): mmengine logs values as they resolved (the URL it loads
    weights from, `${oc.env:TOKEN}` in it), on the console and in the log file alike."""

    # a warning that masking raises is logged here again, in the same thread: escaped only
    _masking = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = message
        if not getattr(self._masking, "active", False):
            self._masking.active = True
            try:
                masked = mask_text(message)
            finally:
                self._masking.active = False
        escaped = escape_control_characters(masked)
        if escaped != message:
            record.msg, record.args = escaped, ()
        return True


def escape_logger_output(logger: logging.Logger) -> None:
    """Put the filter above on `logger` (once)."""
    if not any(isinstance(f, EscapeControlCharacters) for f in logger.filters):
        logger.addFilter(EscapeControlCharacters())


def is_console(handler: logging.Handler) -> bool:
    # FileHandler is a StreamHandler too
    return isinstance(handler, logging.StreamHandler) and not isinstance(
        handler, logging.FileHandler
    )


class SeglabRunner(Runner):
    """mmengine's Runner whose logger shows the dumps on its file handler only, and whose data
    loader workers leave a scheduler's SIGTERM and a terminal's Ctrl-C to the training process.

    The Runner logs the dumps in its constructor, right after `build_logger`: the filter goes on
    there, before any of them.
    """

    @staticmethod
    def build_dataloader(dataloader, seed: int | None = None, diff_rank_seed: bool = False):
        """mmengine's data loader, whose worker processes ignore SIGTERM (preemption.py)."""
        from seglab.run.preemption import workers_ignore_stop_signals

        loader = Runner.build_dataloader(dataloader, seed=seed, diff_rank_seed=diff_rank_seed)
        return workers_ignore_stop_signals(loader)

    def resume(self, filename: str, *args, **kwargs) -> None:
        """mmengine's resume; a checkpoint that does not hold what it reads (a crafted or
        foreign file) stops in one line instead of a traceback from deep inside it."""
        with _one_line_if_unfit(f"resume from {filename}"):
            super().resume(filename, *args, **kwargs)

    def load_checkpoint(self, filename: str, *args, **kwargs):
        with _one_line_if_unfit(f"load_from={filename}"):
            return super().load_checkpoint(filename, *args, **kwargs)

    def build_logger(self, log_level: int | str = "INFO", log_file: str | None = None, **kwargs):
        logger = super().build_logger(log_level=log_level, log_file=log_file, **kwargs)
        escape_logger_output(logger)
        for handler in logger.handlers:
            if is_console(handler) and not any(
                isinstance(f, FileOnlyFilter) for f in handler.filters
            ):
                handler.addFilter(FileOnlyFilter())
        return logger


@contextmanager
def _one_line_if_unfit(what: str) -> Iterator[None]:
    from seglab.errors import ConfigError

    try:
        yield
    except ConfigError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as err:
        reason = " ".join(f"{type(err).__name__}: {err}".split())
        reason = reason if len(reason) <= 300 else reason[:300] + "..."
        raise ConfigError(
            f"{what}: the checkpoint does not hold what mmengine reads from one ({reason}); "
            "expected a checkpoint a run of this config wrote"
        ) from None


@contextmanager
def quiet_console() -> Iterator[None]:
    """For the commands besides training (`seglab test`, `infer`, `import`): the known warnings
    and mmengine's notes about its own defaults reach the log file of the Runner that logs at
    the time (`seglab test`'s, under RUN_DIR/test/), not the terminal; with no Runner there is
    no log to keep them and they are dropped. Other warnings are shown as usual."""
    console = [h for h in MMLogger.get_current_instance().handlers if is_console(h)]
    for handler in console:
        handler.addFilter(FileOnlyFilter())
    with warnings.catch_warnings():  # restores showwarning afterwards
        shown = warnings.showwarning

        def log_warning(message, category, filename, lineno, file=None, line=None) -> None:
            text = str(message)
            if not any(known in text for known in KNOWN_WARNINGS):
                shown(message, category, filename, lineno, file, line)
                return
            # the Runner's logger: its console handler filters the known ones, its file keeps them
            logger = MMLogger.get_current_instance()
            if any(isinstance(h, logging.FileHandler) for h in logger.handlers):
                logger.warning(f"{category.__name__}: {text} ({filename}:{lineno})")

        warnings.showwarning = log_warning
        try:
            yield
        finally:
            for handler in console:
                handler.filters = [f for f in handler.filters if not isinstance(f, FileOnlyFilter)]


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
