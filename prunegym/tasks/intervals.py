"""Means of random episodes with 95 % confidence intervals, and paired differences.

A metric that is a mean over random episodes (the TD-MPC return) is reported with the
half-width of a 95 % confidence interval of the mean: Student's t with ``n − 1`` degrees of
freedom times the standard error ``s/√n`` (``s`` with ``ddof=1``). Two models scored on the same
episodes (the same seeds) are compared by the mean and interval of their per-episode
differences, which removes the spread that comes from the starting states. A difference is
significant when its interval excludes zero.
"""

from __future__ import annotations

import math

import numpy as np


def mean_ci95(values) -> tuple[float, float]:
    """``(mean, half-width)`` of the 95 % t-interval of the mean of ``values`` ``(n,)``;
    the half-width is ``inf`` for a single value."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError("no values to average")
    mean = float(values.mean())
    if values.size == 1:
        return mean, math.inf
    from scipy import stats  # here: scipy.stats takes a second to import

    error = float(values.std(ddof=1)) / math.sqrt(values.size)
    return mean, float(stats.t.ppf(0.975, values.size - 1)) * error


def paired_difference(first, second) -> tuple[float, float]:
    """``(mean, half-width)`` of the 95 % interval of ``first − second``, episode by episode;
    both ``(n,)``, scored on the same episodes in the same order."""
    first = np.asarray(first, dtype=np.float64).reshape(-1)
    second = np.asarray(second, dtype=np.float64).reshape(-1)
    if first.shape != second.shape:
        raise ValueError(
            f"paired values need the same episodes: got {first.size} and {second.size} values"
        )
    return mean_ci95(first - second)


def significant(mean: float, half_width: float) -> bool:
    """Whether the interval ``mean ± half_width`` excludes zero."""
    return abs(mean) > half_width


def describe_difference(mean: float, half_width: float, fmt: str = ".1f") -> str:
    """``"+12.3 ± 4.5"`` when the interval excludes zero, else ``"no significant difference"``
    followed by the interval in brackets; ``fmt`` formats both numbers (``".3g"`` for metrics
    of any scale)."""
    text = f"{mean:+{fmt}} ± {half_width:{fmt}}"
    return text if significant(mean, half_width) else f"no significant difference ({text})"
