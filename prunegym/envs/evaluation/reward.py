"""The reward: the one definition used by ``PruneEnv.step`` and, negated, by every solver."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: The metric term is clipped to ±this many metric scales, so a collapsed model (NaN or a
#: metric far below the dense one) costs a bounded amount and never swamps the penalty.
MAX_NORMALISED_METRIC = 10.0


@dataclass(frozen=True)
class Reward:
    """``reward = clip(σ·(metric − dense_metric)/scale, −10, 10) − μ·(sparsity − ρ)²``.

    A NaN metric counts as −10. Works on floats or numpy arrays of any shape (broadcast).

    Attributes:
        sign: +1 if a higher metric is better, −1 otherwise.
        dense_metric: The dense model's metric (its metric term is 0).
        scale: The task's ``metric_scale`` (metric units).
        penalty: ``μ``.
        target: ``ρ``, the sparsity target (fraction 0–1).
    """

    sign: float
    dense_metric: float
    scale: float
    penalty: float
    target: float

    def metric_term(self, metric):
        """The clipped, normalised metric term ``clip(σ·(metric − dense)/scale, −10, 10)``."""
        normalised = self.sign * (np.asarray(metric, dtype=np.float64) - self.dense_metric)
        normalised = normalised / self.scale
        normalised = np.where(np.isnan(normalised), -MAX_NORMALISED_METRIC, normalised)
        return np.clip(normalised, -MAX_NORMALISED_METRIC, MAX_NORMALISED_METRIC)

    def scalar(self, metric: float, sparsity: float, penalty: float | None = None) -> float:
        """:meth:`__call__` for two floats, in plain Python (the step's inner loop); the same
        IEEE operations in the same order, so the same value."""
        term = self.sign * (metric - self.dense_metric) / self.scale
        limit = MAX_NORMALISED_METRIC
        term = -limit if math.isnan(term) else min(max(term, -limit), limit)
        mu = self.penalty if penalty is None else penalty
        return term - mu * (sparsity - self.target) ** 2

    def __call__(self, metric, sparsity, penalty: float | None = None):
        """The reward of ``metric`` at ``sparsity``; ``penalty`` overrides ``μ`` (a solver's
        own weighting). Returns a float for scalar inputs, else an array."""
        if np.ndim(metric) == 0 and np.ndim(sparsity) == 0:
            return self.scalar(float(metric), float(sparsity), penalty)
        mu = self.penalty if penalty is None else penalty
        miss = np.asarray(sparsity, dtype=np.float64) - self.target
        value = self.metric_term(metric) - mu * miss**2
        return float(value) if np.ndim(value) == 0 else value
