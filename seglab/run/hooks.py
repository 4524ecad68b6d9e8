"""mmengine hooks seglab adds to the Runner it builds (seglab/run/registry.py registers them)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from seglab.run_dirs.files import METRICS_FILE


class MetricsFileHook(Hook):
    """Writes the latest validation metrics to WORK_DIR/metrics.json after every validation.

    When training ends the file holds the final validation, which is what a sweep or a later
    comparison reads; `iter` says when it was measured (and in an epoch-based run, `epoch`:
    the epochs trained).
    """

    priority = "LOW"

    def after_val_epoch(self, runner, metrics: dict | None = None) -> None:
        if metrics and _is_main_process():
            self._write(runner, {**_when(runner), **metrics})

    def after_train(self, runner) -> None:
        """A run that does not validate (`val_cfg=null`) ends with its iteration and no mIoU,
        so it counts as finished: a sweep skips it when launched again."""
        path = Path(runner.work_dir) / METRICS_FILE
        last = json.loads(path.read_text()).get("iter") if path.is_file() else None
        if last != runner.iter and _is_main_process():
            self._write(runner, {**_when(runner), "mIoU": None})

    @staticmethod
    def _write(runner, record: dict) -> None:
        path = Path(runner.work_dir) / METRICS_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({k: json_value(v) for k, v in record.items()}, indent=1) + "\n")
        tmp.replace(path)


def _when(runner) -> dict:
    """`iter`: the iterations trained; in an epoch-based run `epoch` too, the epochs trained
    (the loop counts an epoch once it has ended, before its validation)."""
    from mmengine.runner import EpochBasedTrainLoop

    when = {"iter": runner.iter}
    if isinstance(runner._train_loop, EpochBasedTrainLoop):
        when["epoch"] = runner.epoch
    return when


def json_value(value):
    """numpy and torch scalars as JSON numbers, without float32's trailing digits."""
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float):
        # a class absent from the validation split has no IoU: JSON's null, not NaN
        return None if math.isnan(value) else round(value, 4)
    return value


def _is_main_process() -> bool:
    from mmengine.dist import is_main_process

    return is_main_process()


class NonFiniteLossHook(Hook):
    """Ends training when the loss is NaN or infinite, instead of training on garbage.

    mmengine keeps going on a NaN loss; in a sweep that wastes the job's time and reports a
    meaningless mIoU. Raising makes the job a failure the sweep summary lists.
    """

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        loss = (outputs or {}).get("loss")
        value = float(loss.detach()) if hasattr(loss, "detach") else loss
        if value is not None and not math.isfinite(value):
            raise FloatingPointError(f"loss is {value} at iteration {runner.iter + 1}")


class CheckpointConfigHook(Hook):
    """Drops the config text a checkpoint carries before mmengine's resume can run it.

    mmengine 0.10.7's `Runner.resume` parses `checkpoint['meta']['config']` as a Python config
    file (to compare GPU ids), which executes it. A checkpoint is data a user may not have
    written; seglab's run directory has its own config.py. `after_load_checkpoint` runs before
    that parse, so the key is removed here.
    """

    priority = "VERY_HIGH"

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get("meta")
        if isinstance(meta, dict) and meta.pop("config", None) is not None:
            runner.logger.warning("seglab: ignored the config text stored in the checkpoint")


class CheckpointFitsHook(Hook):
    """`seglab test`: the checkpoint holds every weight of the model, each of its shape, or the
    test stops in one line (mmengine would log a warning and test a partly random model)."""

    priority = "VERY_HIGH"

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        from seglab.checkpoint_loading import check_fits

        check_fits(runner.model, checkpoint, f"checkpoint={runner._load_from}")


class RandomStateHook(Hook):
    """Makes `resume=true` end where the uninterrupted run ends, bit for bit.

    mmengine's checkpoints hold weights, optimizer and schedulers, but not the torch random
    state that dropout and drop-path draw from, and a resumed run restarts it from the seed.
    This hook saves it with every checkpoint and puts it back before the first iteration after
    a resume (after mmengine has replayed the data loader to that point, so the augmentations'
    numpy state is already the one the uninterrupted run had). Validation draws from the same
    generators (a data loader draws its base seed), so it runs between a save and restore of
    all of them: how often a run validates does not change what it trains.
    """

    KEY = "random_state"

    def __init__(self) -> None:
        self._pending: tuple[int, dict] | None = None
        self._around_val: dict | None = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # a save during validation (SIGTERM) keeps the state training left, as a save before it
        state = self._around_val or _torch_random_state()
        checkpoint[self.KEY] = {"torch": state["torch"], "cuda": state["cuda"]}

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(self.KEY)
        if state is not None and not _is_random_state(state):
            from seglab.errors import ConfigError

            raise ConfigError(
                f"{runner._load_from}: its {self.KEY!r} is not the torch random state seglab "
                "saves (a dict of byte tensors 'torch' and 'cuda'); expected a checkpoint a "
                "seglab run wrote"
            )
        if state is not None:  # kept until training proves this was a resume, not load_from
            self._pending = (checkpoint.get("meta", {}).get("iter", -1), state)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self._pending is None:
            return
        saved_at, state = self._pending
        self._pending = None
        if runner.iter == saved_at:
            torch.set_rng_state(state["torch"])
            if torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(state["cuda"])

    def before_val(self, runner) -> None:
        self._around_val = {
            **_torch_random_state(),
            "numpy": np.random.get_state(),
            "python": random.getstate(),
        }

    def after_val(self, runner) -> None:
        state, self._around_val = self._around_val, None
        if state is not None:
            torch.set_rng_state(state["torch"])
            if state["cuda"]:
                torch.cuda.set_rng_state_all(state["cuda"])
            np.random.set_state(state["numpy"])
            random.setstate(state["python"])


def _is_random_state(state: object) -> bool:
    def byte_tensor(value: object) -> bool:
        return isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.dim() == 1

    return (
        isinstance(state, dict)
        and byte_tensor(state.get("torch"))
        and isinstance(state.get("cuda"), list)
        and all(byte_tensor(v) for v in state["cuda"])
    )


def _torch_random_state() -> dict:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda}


class OptunaTrialHook(Hook):
    """This job's side of its Optuna trial: renews the trial's lease while the run trains (so
    that no other worker takes the trial over while it lives, even if its sweeper dies), reports
    each validation's mIoU, and stops the run when the study's pruner rejects it (the sweeper
    then records the trial as pruned, not failed)."""

    priority = "LOW"

    def __init__(self, sweeper: dict, sweep_dir: str, trial_id: int) -> None:
        self.sweeper, self.sweep_dir, self.trial_id = sweeper, sweep_dir, trial_id
        self._study = None
        self._lease = None

    def study(self):
        from omegaconf import OmegaConf

        from seglab.run.study_storage import load_study

        if self._study is None:
            # the storage as written: `${oc.env:VAR}` in it is read here, in the job
            sweeper = {**self.sweeper}
            if sweeper.get("storage"):
                sweeper["storage"] = OmegaConf.create({"url": sweeper["storage"]}).url
            self._study = load_study(sweeper, self.sweep_dir)
        return self._study

    def before_run(self, runner) -> None:
        from seglab.run.study_storage import Lease

        self._lease = Lease(self.study()._storage, self.trial_id)

    def after_run(self, runner) -> None:
        if self._lease is not None:
            self._lease.end()

    def after_val_epoch(self, runner, metrics: dict | None = None) -> None:
        import optuna

        from seglab.run.study_storage import storage_errors

        if not metrics or "mIoU" not in metrics:
            return
        miou = round(float(metrics["mIoU"]), 4)
        try:
            trial = optuna.Trial(self.study(), self.trial_id)
            trial.report(miou, step=runner.iter)
            prune = trial.should_prune()
        except storage_errors() as err:  # the database did not answer: train on, unpruned
            reason = (str(getattr(err, "orig", None) or err).strip().splitlines() or [""])[0]
            runner.logger.warning(
                f"the Optuna study did not take iteration {runner.iter}'s mIoU ({reason}); "
                "training goes on without pruning at this validation"
            )
            return
        if prune:
            if self._lease is not None:
                self._lease.end()
            raise optuna.TrialPruned(f"pruned at iteration {runner.iter} (mIoU={miou})")


CHANNELS_LAST_LOG = "channels_last: the model and its input batches in channels-last memory format"


class ChannelsLastHook(Hook):
    """channels_last=true: the model's weights and the batches its data preprocessor makes in
    channels-last memory format (NHWC), which cuDNN's and oneDNN's convolutions prefer.

    Once the weights are initialised or loaded: random initialisers fill a tensor in memory
    order, so a model converted before (at before_run) would start from other weights than
    fp32's. before_train comes before the first (compiled) step. The batch is converted by a
    forward hook on the data preprocessor, which works whatever its type.
    """

    priority = "VERY_HIGH"  # before any hook that runs the model

    def before_train(self, runner) -> None:
        self._convert(runner)

    def before_val(self, runner) -> None:
        self._convert(runner)

    def before_test(self, runner) -> None:
        self._convert(runner)

    def _convert(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if getattr(model, "_seglab_channels_last", False):  # training, then validation: once
            return
        model.to(memory_format=torch.channels_last)  # 4-D weights only; in place
        model.data_preprocessor.register_forward_hook(_channels_last_batch)
        model._seglab_channels_last = True
        runner.logger.info(CHANNELS_LAST_LOG)


def _channels_last_batch(module: torch.nn.Module, args: Any, output: Any) -> Any:
    inputs = output.get("inputs") if isinstance(output, dict) else None
    if isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
        return {**output, "inputs": inputs.contiguous(memory_format=torch.channels_last)}
    return None  # a batch that is not one 4-D tensor stays as it is
