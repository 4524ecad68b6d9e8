"""mmseg's IoUMetric, returning the per-class values it otherwise only prints.

seglab swaps it in for `IoUMetric` when it builds a run's Runner (the exported config keeps
mmseg's own), so per-class IoU and accuracy reach the logs, `metrics.json` and the report.
"""

from __future__ import annotations

import numpy as np
from mmseg.evaluation.metrics import IoUMetric


class PerClassIoUMetric(IoUMetric):
    def compute_metrics(self, results: list) -> dict[str, float]:
        metrics = super().compute_metrics(results)
        if self.format_only:
            return metrics
        areas = [sum(area) for area in zip(*results, strict=True)]
        per_class = self.total_area_to_metrics(*areas, self.metrics, self.nan_to_num, self.beta)
        per_class.pop("aAcc", None)
        for name, values in per_class.items():
            for cls, value in zip(self.dataset_meta["classes"], values, strict=True):
                metrics[f"{name}.{cls}"] = float(np.round(value * 100, 2))
        return metrics


def with_per_class_metrics(evaluator: dict | list) -> dict | list:
    """The evaluator config with mmseg's IoUMetric replaced by PerClassIoUMetric."""
    if isinstance(evaluator, list):
        return [with_per_class_metrics(e) for e in evaluator]
    if evaluator.get("type") in ("IoUMetric", "mmseg.IoUMetric"):
        return {**evaluator, "type": "PerClassIoUMetric"}
    return evaluator
