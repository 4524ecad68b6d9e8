"""The command line's overrides checked before Hydra starts: what Hydra would refuse in several
lines, or what would fail only once a sweep's jobs launch, as one line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from seglab import CONF_DIR
from seglab.checks.requirements import check_launcher_environment
from seglab.config.compose import compose, groups, missing_key_error, parse_overrides


def check_overrides(
    overrides: Sequence[str], launching: bool = False, conf_dir: Path = CONF_DIR
) -> None:
    """What Hydra would refuse in several lines, or what would fail only once jobs launch, as
    one line before Hydra starts: a key the config lacks (`optim_wrapper.optimizer.lrr=0.1`,
    where Hydra hints at `+`), a wrong value for a typed node (the sweeper's and launcher's
    options: seglab's in hydra_plugins/seglab_plugins/config.py, Hydra's own in its joblib and
    submitit plugins), and where `launching` (a sweep that will start jobs, not `--cfg`) a
    launcher this machine cannot run.

    Composes the config once, with the overrides that are not sweeps; a swept key is looked up
    in that config unless a group option is swept too (its keys may differ per option).
    """
    parsed = parse_overrides(overrides)
    cfg = compose(
        [line for line, o in zip(overrides, parsed, strict=True) if not o.is_sweep_override()],
        conf_dir,
    )
    swept = [(line, o) for line, o in zip(overrides, parsed, strict=True) if o.is_sweep_override()]
    known = groups(conf_dir)
    if not any(o.key_or_group.lstrip("/") in known for _, o in swept):
        for line, override in swept:
            if override.is_add() or override.is_force_add() or override.is_delete():
                continue
            key = override.key_or_group
            parent_key, _, leaf = key.rpartition(".")
            parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
            if isinstance(parent, DictConfig) and leaf not in parent:
                raise missing_key_error(line, key, list(parent))
    if launching or cfg.hydra.mode == RunMode.MULTIRUN:  # `hydra.mode=MULTIRUN` is `-m` too
        choice = cfg.hydra.runtime.choices.get("hydra/launcher")
        check_launcher_environment(choice, cfg.hydra.launcher)
