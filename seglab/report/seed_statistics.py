"""How far a mean over seeds can be trusted, and whether two configurations differ by more than
seed noise.

A configuration trained with n seeds gives n final mIoUs. Its interval is the mean's confidence
interval from Student's t with n - 1 degrees of freedom. Two configurations are compared by
Welch's t-test (scipy's `ttest_ind(equal_var=False)`: the spreads over seeds need not be equal),
with the confidence interval of the difference of their means; a difference is called
distinguishable from seed noise when its p-value is below 1 - LEVEL, that is when the interval
does not hold 0. One seed on a side leaves the noise unknown: no test is made and the verdict
says how many seeds to run.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

# the confidence level of every interval and test in a report
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """The mean of `n` values, their standard deviation and the mean's confidence interval
    (None where one value gives no spread)."""

    mean: float
    std: float | None
    low: float | None
    high: float | None
    n: int

    def cells(self) -> list[str]:
        """`mean ± std` and `[low, high]` as a table writes them."""
        if self.std is None:
            return [f"{self.mean:.2f} (one seed)", ""]
        return [f"{self.mean:.2f} ± {self.std:.2f}", f"[{self.low:.2f}, {self.high:.2f}]"]


def interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """The mean of `values` and its `level` confidence interval (Student's t)."""
    from scipy import stats

    mean = statistics.fmean(values)
    if len(values) < 2:
        return Interval(mean, None, None, None, len(values))
    std = statistics.stdev(values)
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * std / math.sqrt(len(values))
    return Interval(mean, std, mean - half, mean + half, len(values))


@dataclass(frozen=True)
class Difference:
    """B's mean minus A's, its confidence interval and Welch's test (None where a side has one
    seed, or no side has any spread)."""

    a: Interval
    b: Interval
    difference: float
    low: float | None
    high: float | None
    p_value: float | None
    level: float

    @property
    def distinguishable(self) -> bool | None:
        """Whether the difference is beyond seed noise at `level`; None where untested."""
        return None if self.p_value is None else self.p_value < 1 - self.level

    def verdict(self) -> str:
        """One line a reader decides on."""
        change = f"B - A = {self.difference:+.2f} mIoU"
        if self.a.n < 2 or self.b.n < 2:
            return (
                f"{change}, not tested: seed noise is unknown with {self.a.n} and {self.b.n} "
                "seed(s); run each with 3 or more seeds (-m randomness.seed=0,1,2)"
            )
        if self.p_value is None:
            return f"{change}, not tested: every seed of both gave the same mIoU (no spread)"
        interval_text = f"{self.level:.0%} CI [{self.low:+.2f}, {self.high:+.2f}]"
        if self.distinguishable:
            return (
                f"{change}, {interval_text}, Welch's t-test p = {self.p_value:.3g}: "
                "distinguishable from seed noise"
            )
        return (
            f"{change}, {interval_text}, Welch's t-test p = {self.p_value:.3g}: "
            f"not distinguishable from seed noise ({self.a.n} and {self.b.n} seeds)"
        )


def difference(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Difference:
    """B's mean minus A's with Welch's t-test and the difference's confidence interval."""
    from scipy import stats

    first, second = interval(a, level), interval(b, level)
    change = second.mean - first.mean
    if first.std is None or second.std is None or first.std == second.std == 0:
        return Difference(first, second, change, None, None, None, level)
    with warnings.catch_warnings():  # one side's equal values: scipy warns, Welch still holds
        warnings.simplefilter("ignore", RuntimeWarning)
        test = stats.ttest_ind(b, a, equal_var=False)
    low, high = test.confidence_interval(confidence_level=level)
    return Difference(first, second, change, float(low), float(high), float(test.pvalue), level)
