"""TensorBoard for mmseg runs (`logger=tensorboard`), on mmengine's TensorboardVisBackend.

mmengine's backend writes each session's event files into its own `<timestamp>/vis_data/` (a
resumed run would be a second TensorBoard run) and logs config.py as text (a value under a key
mmseg reads as it is, secret or not). seglab's backend (added to the Runner's visualizer when
`logger=tensorboard`; the exported config stays pure mmseg):
- writes every train and validation metric, per-class IoU and accuracy (`val/IoU.<class>`)
  included, against the training iteration into `<run dir>/tensorboard/`: one TensorBoard run
  per run directory, named after it, so `tensorboard --logdir outputs/sweeps/NAME` shows a
  sweep's jobs side by side; a resumed run appends to it, and TensorBoard drops the events its
  first session wrote after the checkpoint it resumed from (SummaryWriter's purge_step);
- logs the composed Hydra config and the overrides as text, masked as wandb's are
  (tracking.tracked_config), and the overrides as hparams against val/mIoU (the HPARAMS tab).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from mmengine.visualization.vis_backend import TensorboardVisBackend, force_init_env

from seglab.run.tracking import TrackedRun, as_plain, tracked_config
from seglab.run_dirs.files import TENSORBOARD_DIR
from seglab.run_dirs.resume import checkpoint_iteration

HPARAM_METRIC = "val/mIoU"


def hparams(overrides: list[str]) -> dict[str, Any]:
    """The (masked) overrides as TensorBoard hparams: key -> number, boolean or text."""
    found: dict[str, Any] = {}
    for override in overrides:
        key, sep, value = override.partition("=")
        key = key.lstrip("+~")
        if not sep or key == "resume":
            continue
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = value
        found[key] = parsed if isinstance(parsed, (bool, int, float)) else value
    return found


class SeglabTensorboardVisBackend(TensorboardVisBackend):
    """mmengine's backend with the masked config as text and hparams; `purge_step`: the first
    iteration a resumed run trains again."""

    def __init__(
        self,
        save_dir: str,
        config: dict | None = None,
        hparams: dict | None = None,
        purge_step: int | None = None,
    ) -> None:
        super().__init__(save_dir)
        self._config, self._hparams = as_plain(config or {}), as_plain(hparams)
        self._purge_step = purge_step

    def _init_env(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        Path(self._save_dir).mkdir(parents=True, exist_ok=True)
        self._tensorboard = SummaryWriter(self._save_dir, purge_step=self._purge_step)

    @force_init_env
    def add_config(self, config, **kwargs: Any) -> None:
        """The composed Hydra config and the overrides as text; mmengine's logs config.py."""
        step = self._purge_step or 0
        for tag, value in (
            ("config", {k: v for k, v in self._config.items() if k != "overrides"}),
            ("overrides", self._config.get("overrides", [])),
        ):
            lines = yaml.safe_dump(value, sort_keys=False).splitlines()
            # indented: TensorBoard renders text as Markdown, where that is a code block
            self._tensorboard.add_text(tag, "".join(f"    {line}\n" for line in lines), step)
        if self._hparams:
            from torch.utils.tensorboard.summary import hparams as hparams_summaries

            writer = self._tensorboard._get_file_writer()
            for summary in hparams_summaries(self._hparams, {HPARAM_METRIC: 0.0}):
                writer.add_summary(summary)


def tensorboard_additions(mm_cfg, tensorboard_cfg: dict, run: TrackedRun) -> None:
    """Turn TensorBoard on for this Runner: seglab's backend beside mmengine's local one."""
    purge_step = None
    checkpoint = Path(mm_cfg.get("load_from") or "") if mm_cfg.get("resume") else None
    # an epoch_N.pth does not name its iteration: a resumed epoch run purges nothing
    if checkpoint is not None and checkpoint.name.startswith("iter_"):
        purge_step = checkpoint_iteration(checkpoint) + 1
    config = tracked_config(run.hydra_config, run.overrides)
    backend = dict(
        type="SeglabTensorboardVisBackend",
        save_dir=str(run.run_dir / TENSORBOARD_DIR),
        config=config,
        hparams=hparams(config["overrides"]) if tensorboard_cfg.get("hparams", True) else None,
        purge_step=purge_step,
    )
    mm_cfg.visualizer.vis_backends = [*mm_cfg.visualizer.get("vis_backends", []), backend]
