"""seglab's classes in mmengine's registries and its checkpoint loaders, registered by one
explicit call before a Runner or an inferencer is built (not as a side effect of an import).

A config names a class by its registered name (`dict(type="MetricsFileHook")`); the Runner
looks it up when it builds the hook, the metric, the visualizer backend or the pipeline's
transform. `CheckedLoading` goes into mmseg's TRANSFORMS and `PerClassIoUMetric` into mmseg's
METRICS, where mmseg's datasets and evaluators look; the hooks and the visualizer backend into
mmengine's root registries, which every scope falls back to.
"""

from __future__ import annotations

from mmengine.registry import HOOKS, LOOPS, VISBACKENDS, Registry
from mmseg.registry import METRICS, TRANSFORMS

from seglab import checkpoint_loading
from seglab.run import hooks, mlflow_logging, preemption, tensorboard_logging, wandb_logging
from seglab.run.data_loading import CHECKED_LOADING, CheckedLoading
from seglab.run.metrics import PerClassIoUMetric

SEGLAB_HOOKS = (
    hooks.MetricsFileHook,
    hooks.NonFiniteLossHook,
    hooks.CheckpointConfigHook,
    hooks.CheckpointFitsHook,
    hooks.RandomStateHook,
    hooks.OptunaTrialHook,
    hooks.ChannelsLastHook,
    preemption.PreemptionHook,
    wandb_logging.WandbPredictionsHook,
)


def register_class(registry: Registry, cls: type, name: str | None = None) -> None:
    """`cls` in `registry` under `name` (its class name), once; the same class again is a no-op."""
    name = name or cls.__name__
    if registry.module_dict.get(name) is not cls:
        registry.register_module(name=name, module=cls, force=True)


def register_with_mmengine() -> None:
    """Everything a Runner built from a seglab config looks up, and the checkpoint loaders that
    load every file as data (seglab/checkpoint_loading.py). Cheap to call again."""
    for hook in SEGLAB_HOOKS:
        register_class(HOOKS, hook)
    register_class(VISBACKENDS, wandb_logging.SeglabWandbVisBackend)
    register_class(VISBACKENDS, mlflow_logging.SeglabMLflowVisBackend)
    register_class(VISBACKENDS, tensorboard_logging.SeglabTensorboardVisBackend)
    register_class(LOOPS, preemption.MidEpochResumingLoop)
    register_class(METRICS, PerClassIoUMetric)
    register_class(TRANSFORMS, CheckedLoading, CHECKED_LOADING)
    checkpoint_loading.register()
