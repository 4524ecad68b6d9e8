"""Checked, not assumed: the exported graph in ONNX Runtime against the PyTorch model.

Both segment the same photos end to end, the PyTorch model through mmseg's own inferencer (its
test pipeline, data preprocessor, inference mode and resize to the photo) and the graph through
`OnnxSegmenter`; compared are the logits at the photo's size (the largest absolute difference,
against the range the PyTorch logits span) and the class each pixel gets.

Defaults, from what was measured (README, "Deploying a model"): every model exported here
differed by at most 1.2e-6 of its logit range and agreed on every pixel; a tolerance of 1e-3 of
the range and an agreement of 99.9% leave room for other machines and operator kernels, and
still catch a deployment's mistakes where the classes hardly change (the final resize with
align_corners flipped: 0.9 to 1.6% of the range, with 99.75 to 100% of the pixels agreeing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TOLERANCE = 1e-3  # the largest |logit difference| allowed, as a share of the logit range
AGREEMENT = 0.999  # the smallest share of pixels whose class must agree


@dataclass(frozen=True)
class Parity:
    images: int
    pixels: int
    max_abs_diff: float
    logit_range: float
    agreement: float

    @property
    def relative(self) -> float:
        return self.max_abs_diff / self.logit_range if self.logit_range > 0 else self.max_abs_diff

    def problem(self, tolerance: float, agreement: float) -> str | None:
        """Why the graph is not the model, or None."""
        if not np.isfinite(self.max_abs_diff) or self.relative > tolerance:
            return (
                f"its logits differ from PyTorch's by up to {self.max_abs_diff:.3g}, "
                f"{self.relative:.3g} of their range {self.logit_range:.3g}, more than "
                f"tolerance={tolerance:g}"
            )
        if self.agreement < agreement:
            return (
                f"its classes agree with PyTorch's on {100 * self.agreement:.3f}% of "
                f"{self.pixels} pixels, fewer than agreement={agreement:g}"
            )
        return None

    def line(self) -> str:
        return (
            f"max |logit difference| {self.max_abs_diff:.3g} ({self.relative:.3g} of the logit "
            f"range {self.logit_range:.3g}), classes agree on {100 * self.agreement:.3f}% of "
            f"{self.pixels} pixels"
        )

    def to_json(self, tolerance: float, agreement: float) -> dict:
        return {
            "images": self.images,
            "pixels": self.pixels,
            "max_abs_logit_diff": self.max_abs_diff,
            "logit_range": self.logit_range,
            "relative_logit_diff": self.relative,
            "pixel_agreement": self.agreement,
            "tolerance": tolerance,
            "min_agreement": agreement,
        }


def compare(reference: Sequence[np.ndarray], ours: Sequence[np.ndarray], classes_of) -> Parity:
    """CxHxW logits of the same photos; `classes_of` turns logits into class indices."""
    worst, low, high, agree, pixels = 0.0, np.inf, -np.inf, 0, 0
    for ref, out in zip(reference, ours, strict=True):
        if ref.shape != out.shape:
            return Parity(len(reference), pixels, float("inf"), 0.0, 0.0)
        diff = float(np.abs(ref - out).max())
        worst = max(worst, diff if np.isfinite(diff) else float("inf"))  # NaN is no match
        low, high = min(low, float(ref.min())), max(high, float(ref.max()))
        agree += int((classes_of(ref) == classes_of(out)).sum())
        pixels += ref.shape[1] * ref.shape[2]
    return Parity(len(reference), pixels, worst, high - low, agree / max(pixels, 1))
