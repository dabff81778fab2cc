"""Bisection onto a sparsity target with exact counts; nothing is evaluated."""

from __future__ import annotations

import numpy as np


def bisect_sparsity(
    core, rows_at, low: np.ndarray, high: np.ndarray, targets: np.ndarray, steps: int = 40
) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` ``(K,)`` bracketing each target: ``sparsity(rows_at(low)) < target``
    (or ``low`` at its start), ``sparsity(rows_at(high)) ≥ target`` where the starting ``high``
    reaches it. ``rows_at`` maps ``(K,)`` parameters to ``(K, m)`` coefficients whose exact
    sparsity (``core.sparsity_of``) does not fall as the parameter grows."""
    for _ in range(steps):
        middle = (low + high) / 2
        short = core.sparsity_of(rows_at(middle)) < targets
        low, high = np.where(short, middle, low), np.where(short, high, middle)
    return low, high
