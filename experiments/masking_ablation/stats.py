"""Seed statistics: the mean of a metric over seeds with its 95% confidence interval (Student's t), and
the paired comparison of a strategy with the baseline (per-seed differences: same seed = same
initialisation, data order and dropout, so most of the seed-to-seed variation cancels).

With n seeds the interval is mean ± t(0.975, n - 1) · s / √n, s the sample standard deviation. Three
seeds give t = 4.303: only large or very consistent differences exclude 0, as they should.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Two-sided 95% quantiles of Student's t for 1 to 30 degrees of freedom.
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131)
T975 += (2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
Z975 = 1.959964


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom (a table to 30, then the
    Cornish-Fisher expansion around the normal quantile, within 1e-3 of the exact value)."""
    if df < 1:
        raise ValueError(f"a t interval needs at least 2 values (df >= 1), got df={df}")
    if df <= len(T975):
        return T975[df - 1]
    z = Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class Interval:
    """A mean over `n` values and the half-width of its 95% interval (None with a single value)."""

    mean: float
    half_width: float | None
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.half_width is not None and abs(self.mean) > self.half_width

    def format(self, digits: int = 3, signed: bool = False) -> str:
        mean = f"{self.mean:+.{digits}f}" if signed else f"{self.mean:.{digits}f}"
        return mean if self.half_width is None else f"{mean} ± {self.half_width:.{digits}f}"


def mean_ci(values: Sequence[float]) -> Interval:
    """Mean and 95% t-interval half-width of `values` (one per seed)."""
    if not values:
        raise ValueError("no values")
    mean = statistics.fmean(values)
    if len(values) == 1:
        return Interval(mean, None, 1)
    return Interval(mean, t975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values)), len(values))


def paired_difference(values: Mapping[int, float], baseline: Mapping[int, float]) -> Interval | None:
    """Mean ± 95% interval of value − baseline over the seeds both have (None when they share none)."""
    seeds = sorted(set(values) & set(baseline))
    return mean_ci([values[seed] - baseline[seed] for seed in seeds]) if seeds else None
