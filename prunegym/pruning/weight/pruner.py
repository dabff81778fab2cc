"""Unstructured pruning with soft coefficients: one coefficient per Linear layer.

:class:`WeightPruner` implements :class:`prunegym.pruning.protocol.Pruner`, as
:class:`prunegym.pruning.SoftPruner` does, so
``PruneEnv(granularity="weight")`` and every solver work unchanged: ``c_i`` is the fraction of
layer ``i``'s weights zeroed, the lowest-scoring first by a weight-level criterion
(:mod:`prunegym.pruning.weight.importance`), and each removed weight's bias shift is added.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from prunegym.pruning.channel.groups import Group
from prunegym.pruning.channel.masks import pruned_counts
from prunegym.pruning.weight.importance import (
    WEIGHT_CRITERIA,
    compensation_statistics,
    linear_layers,
    mean_shifts,
    optimal_shift,
)
from prunegym.pruning.weight.masks import weight_scores

WEIGHT_COMPENSATIONS = ("none", "mean", "optimal")


class WeightPruner:
    """Weight-level soft pruning of ``model`` in place (see the module docstring).

    Args:
        model, components, calibration_batches, forward, loss: As for ``SoftPruner``.
        criterion: ``magnitude``, ``gradient-magnitude``, ``random``,
            ``elimination-compensation`` or ``nonlinear``.
        compensation: ``none``; ``mean`` (``Δb_ij = W_ij E[z_j]``, eq. 3's shift); or
            ``optimal`` (``Δb_ij = W_ij B_ij / A_i``, eq. 7).
        seed: Seed of ``random``.
    """

    def __init__(
        self,
        model: nn.Module,
        components: dict[str, nn.Module],
        calibration_batches: Callable[[], Iterable],
        forward: Callable[[nn.Module, object], torch.Tensor],
        loss: Callable | None = None,
        criterion: str = "elimination-compensation",
        compensation: str = "optimal",
        seed: int = 0,
    ) -> None:
        if criterion not in WEIGHT_CRITERIA:
            raise ValueError(f"unknown weight criterion {criterion!r}; choose {WEIGHT_CRITERIA}")
        if compensation not in WEIGHT_COMPENSATIONS:
            raise ValueError(
                f"unknown weight compensation {compensation!r}; choose {WEIGHT_COMPENSATIONS}"
            )
        self.model, self.criterion, self.compensation = model, criterion, compensation
        self.granularity = "weight"
        self.masker = None  # no channel masks: the sliced evaluation does not apply
        names = {module: name for name, module in model.named_modules()}
        self.layers: list[nn.Linear] = []
        self.groups: list[Group] = []
        for component, module in components.items():
            for number, layer in enumerate(linear_layers(module), start=1):
                self.groups.append(Group(
                    len(self.groups), "layer", (component,), number, layer.weight.numel(),
                    (names[layer],), layer.weight.numel(),
                ))  # fmt: skip
                self.layers.append(layer)
        if not self.layers:
            raise ValueError("granularity='weight' needs nn.Linear layers; the model has none")
        inputs = None
        if criterion == "nonlinear":
            inputs = torch.cat([_first_tensor(b) for b in calibration_batches()])[:256]
        scores, shifts = weight_scores(
            model, criterion, calibration_batches(), forward, loss, inputs, seed
        )
        self.orders = [
            torch.argsort(scores[layer].reshape(-1), stable=True) for layer in self.layers
        ]
        self.shifts = self._shifts(calibration_batches, forward, shifts, inputs)
        self.dense = [(layer.weight.detach().clone(), _bias(layer)) for layer in self.layers]
        self.channels = np.array([g.channels for g in self.groups], dtype=np.int64)
        self.total_parameters = sum(p.numel() for p in model.parameters())
        self.applied_counts = np.zeros(len(self.layers), dtype=np.int64)

    def _shifts(self, calibration_batches, forward, criterion_shifts, inputs):
        if self.compensation == "none":
            return None
        if self.compensation == "optimal":
            if self.criterion == "elimination-compensation":
                return criterion_shifts
            stats = compensation_statistics(self.model, calibration_batches(), forward, self.layers)
            return {layer: optimal_shift(layer, a, b) for layer, (a, b, _) in stats.items()}
        if inputs is None:
            inputs = torch.cat([_first_tensor(b) for b in calibration_batches()])
        return mean_shifts(self.model, inputs, self.layers)

    def counts(self, coefficients: np.ndarray) -> np.ndarray:
        """Zeroed weights per layer, ``min(⌊c_i·n_i⌉, n_i − 1)``, for ``(m,)`` or ``(K, m)``."""
        return pruned_counts(coefficients, self.channels)

    @torch.no_grad()
    def apply_counts(self, counts: np.ndarray) -> None:
        """Zero the ``counts[i]`` lowest-scoring weights of each layer and shift its bias."""
        self.applied_counts = np.full(len(self.layers), -1)  # unknown until every write is done
        for i, layer in enumerate(self.layers):
            weight, bias = self.dense[i]
            keep = torch.ones(weight.numel(), dtype=torch.bool, device=weight.device)
            keep[self.orders[i][: int(counts[i])]] = False
            keep = keep.reshape(weight.shape)
            layer.weight.copy_(weight * keep)
            if bias is not None:
                shift = 0.0 if self.shifts is None else (self.shifts[layer] * ~keep).sum(1)
                layer.bias.copy_(bias + shift)
        self.applied_counts = np.asarray(counts, dtype=np.int64).copy()

    def apply(self, coefficients: np.ndarray) -> np.ndarray:
        counts = self.counts(coefficients)
        self.apply_counts(counts)
        return counts

    def restore(self) -> None:
        """Restore every dense weight and bias bit for bit."""
        self.apply_counts(np.zeros(len(self.layers), dtype=np.int64))

    def zeroed(self, counts: np.ndarray) -> np.ndarray:
        """Parameter entries zeroed by ``counts`` ``(m,)`` or ``(K, m)``."""
        return np.asarray(counts, dtype=np.int64).sum(axis=-1)

    def sparsity(self, coefficients: np.ndarray) -> np.ndarray:
        """Exact sparsity: zeroed weights over all parameters (fraction 0–1)."""
        return self.zeroed(self.counts(coefficients)) / self.total_parameters

    def sparsity_estimate(self, coefficients: np.ndarray) -> np.ndarray:
        """``Σ c_i n_i / ‖θ‖₀`` (eq. 1b with ``s_i = n_i``)."""
        return np.asarray(coefficients, dtype=np.float64) @ self.channels / self.total_parameters

    def group_norms(self) -> np.ndarray:
        """Mean absolute weight of each layer in the dense model."""
        return np.array([float(weight.abs().mean()) for weight, _ in self.dense])


def _bias(layer: nn.Linear):
    return None if layer.bias is None else layer.bias.detach().clone()


def _first_tensor(batch) -> torch.Tensor:
    return batch if isinstance(batch, torch.Tensor) else batch[0]
