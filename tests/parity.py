"""The parity rule lives in seglab.parity (the zoo generator uses it too)."""

from seglab.parity import UPSTREAM_CONFIGS, differences, parity_differences, runner_view

__all__ = ["UPSTREAM_CONFIGS", "differences", "parity_differences", "runner_view"]
