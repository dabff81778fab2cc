"""One object that turns soft coefficients into masked, compensated weights on a model.

It wires the pruning core together: groups → calibration statistics → channel ranking →
compensation matrices → masks and exact sparsity. It only sees plain PyTorch objects and
callables, never a Task or Gymnasium.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from prunegym.pruning.channel.attention import explicit_attention
from prunegym.pruning.channel.bn_recalibration import BatchNormRecalibration
from prunegym.pruning.channel.compensation import (
    add_missing_biases,
    check_compensation,
    compensation_matrix,
)
from prunegym.pruning.channel.groups import PruningGroup, find_groups
from prunegym.pruning.channel.importance import (
    check_criterion,
    group_channel_norms,
    orders_of,
    score_channels,
)
from prunegym.pruning.channel.layer_norm import explicit_layer_norms
from prunegym.pruning.channel.least_squares import LeastSquaresRefit
from prunegym.pruning.channel.macs import positions_per_weight_entry
from prunegym.pruning.channel.masks import ChannelMasker, pruned_counts
from prunegym.pruning.channel.sparsity import SparsityCounter
from prunegym.pruning.channel.statistics import collect_statistics, patches_fit
from prunegym.tasks.options import is_count

MAX_COEFFICIENT = 0.95


def check_probes(probes, optimal: bool) -> None:
    """One-line ``ValueError`` unless ``probes`` is a whole number, at least 1 if ``optimal``
    compensation uses them."""
    if not is_count(probes, 1 if optimal else 0):
        least = ">= 1 for optimal compensation" if optimal else ">= 0"
        raise ValueError(
            f"probes must be a whole number of Rademacher probes per calibration batch, {least}, "
            f"got {probes!r}"
        )


class SoftPruner:
    """Soft-coefficient structured pruning of ``model`` in place (a
    :class:`prunegym.pruning.protocol.Pruner` of granularity ``"channel"``).

    Args:
        model: The model to prune; it is modified in place, so pass a copy you own. Its
            ``nn.MultiheadAttention`` layers are replaced by the equal
            :class:`~prunegym.pruning.channel.attention.HeadAttention`, its LayerNorms by
            :class:`~prunegym.pruning.channel.layer_norm.KeptLayerNorm`.
        components: Component name to submodule.
        example_inputs: Inputs for tracing the dependency graph.
        calibration_batches: Returns a fresh iterable of calibration batches on each call.
        forward: ``forward(model, batch) -> output tensor``.
        loss: ``loss(model, batch) -> scalar``; needed by ``criterion="taylor"``.
        output_layers: Layers never pruned; ``None`` picks the last Linear/convolution.
        criterion: Channel ranking, one of ``l1``, ``l2``, ``random``, ``taylor``,
            ``compensated``, ``lsq``, ``bn-scale``.
        compensation: Compensation, one of ``none``, ``mean``, ``optimal``, ``lsq``.
        probes: Rademacher probes per calibration batch for ``optimal`` compensation.
        seed: Seed of the ``random`` criterion and of the probes.
        bn_recalibration: ``B > 0`` re-estimates the BatchNorm statistics of every masked model
            on ``B`` calibration batches (adaptive BN, :mod:`.bn_recalibration`).
        lsq_ridge: ``λ`` of the ``lsq`` refit and criterion, relative to the mean input
            variance of each consumer.
    """

    def __init__(
        self,
        model: nn.Module,
        components: dict[str, nn.Module],
        example_inputs,
        calibration_batches: Callable[[], Iterable],
        forward: Callable[[nn.Module, object], torch.Tensor],
        loss: Callable[[nn.Module, object], torch.Tensor] | None = None,
        output_layers: list[nn.Module] | None = None,
        criterion: str = "compensated",
        compensation: str = "mean",
        probes: int = 8,
        seed: int = 0,
        bn_recalibration: int = 0,
        lsq_ridge: float = 1e-2,
    ) -> None:
        self.granularity = "channel"
        if not is_count(bn_recalibration, 0):
            raise ValueError(
                f"bn_recalibration must be a whole number of batches >= 0, got {bn_recalibration!r}"
            )
        if not (math.isfinite(lsq_ridge) and lsq_ridge > 0):
            raise ValueError(f"lsq_ridge must be a finite number > 0, got {lsq_ridge!r}")
        self.criterion = check_criterion(criterion)
        self.compensation = check_compensation(compensation)
        check_probes(probes, optimal=compensation == "optimal")
        probes = int(probes)  # a numpy integer too
        self.model = model
        explicit_attention(model)  # attention heads become groups (same function)
        explicit_layer_norms(model)  # statistics over the kept channels when masked
        groups = find_groups(model, components, example_inputs, output_layers)
        modules = dict(model.named_modules())
        if compensation != "none":
            consumers = [modules[c.module] for g in groups for c in g.consumers]
            if add_missing_biases(consumers):  # new bias entries join their layer's groups
                groups = find_groups(model, components, example_inputs, output_layers)
        self.groups: list[PruningGroup] = groups
        consumer_modules = {c.module: modules[c.module] for g in groups for c in g.consumers}
        statistics = None
        least_squares = "lsq" in (criterion, compensation)
        if criterion in ("compensated", "lsq") or compensation != "none":
            statistics = collect_statistics(
                model,
                consumer_modules,
                calibration_batches(),
                forward,
                probes=probes if compensation == "optimal" else 0,
                seed=seed,
                covariance=least_squares,
            )
        refits = {}
        if least_squares:
            refits = {
                name: _refit(module, statistics[name], lsq_ridge)
                for name, module in consumer_modules.items()
                if patches_fit(module)
            }
        self.scores = score_channels(
            criterion,
            groups,
            model,
            statistics=statistics,
            calibration_batches=calibration_batches() if criterion == "taylor" else None,
            loss=loss,
            seed=seed,
            refits=refits,
        )  # (n_i,) float64 per group, on the CPU
        self.orders = orders_of(self.scores)
        if compensation != "lsq":
            refits = {}
        matrices = {
            name: compensation_matrix(module, statistics[name], compensation)
            for name, module in consumer_modules.items()
            if compensation != "none" and name not in refits
        }
        self.masker = ChannelMasker(model, groups, self.orders, matrices, refits)
        shapes = {name: p.shape for name, p in model.named_parameters()}
        self.counter = SparsityCounter(
            self.masker.layout, self.orders, shapes, [g.parameters for g in groups]
        )
        self.channels = np.array([g.channels for g in groups], dtype=np.int64)
        self.recalibration = None
        if bn_recalibration:
            self.recalibration = BatchNormRecalibration(
                model, calibration_batches, forward, int(bn_recalibration)
            )
            if not self.recalibration.norms:
                raise ValueError(
                    f"bn_recalibration={bn_recalibration} re-estimates BatchNorm statistics, but "
                    "the model has no BatchNorm layer"
                )
        self._calibrated = np.zeros(len(groups), dtype=np.int64)  # counts the statistics fit
        self._positions = positions_per_weight_entry(model, example_inputs)
        self.total_macs = sum(n * shapes[name].numel() for name, n in self._positions.items())

    @property
    def total_parameters(self) -> int:
        """``‖θ‖₀``: all parameter entries of the dense model."""
        return self.counter.total

    def counts(self, coefficients: np.ndarray) -> np.ndarray:
        """Masked channels per group, ``min(⌊c_i·n_i⌉, n_i − 1)``, for ``(m,)`` or ``(K, m)``."""
        return pruned_counts(coefficients, self.channels)

    @property
    def applied_counts(self) -> np.ndarray:
        """The masked channels per group currently applied."""
        return self.masker.applied_counts

    def apply_counts(self, counts: np.ndarray) -> None:
        """Mask and compensate for given counts per group (e.g. to go back to a former state),
        and re-estimate the BatchNorm statistics if asked to."""
        self.masker.apply(counts)
        counts = np.asarray(counts, dtype=np.int64)
        if self.recalibration is None or np.array_equal(counts, self._calibrated):
            return
        if counts.any():
            try:
                self.recalibration.recalibrate()
            except BaseException:
                self.recalibration.restore()  # never reset statistics under applied masks
                self._calibrated[:] = 0
                raise
        else:
            self.recalibration.restore()  # the dense model keeps its own statistics
        self._calibrated = counts.copy()

    def zeroed(self, counts: np.ndarray) -> np.ndarray:
        """Parameter entries zeroed by ``counts`` ``(m,)`` or ``(K, m)``."""
        return self.counter.zeroed(counts)

    def macs(self, counts: np.ndarray) -> np.ndarray:
        """MACs per sample of the convolutions and linear layers (int64, ``()`` or ``(K,)``)
        once ``counts`` ``(m,)`` or ``(K, m)`` channels are masked (see
        :mod:`prunegym.pruning.channel.macs`)."""
        return self.total_macs - self.counter.zeroed(counts, self._positions)

    def group_norms(self) -> np.ndarray:
        """Mean per-channel L2 norm of each group in the current (dense) model."""
        return np.array([float(group_channel_norms(self.model, g).mean()) for g in self.groups])

    def apply(self, coefficients: np.ndarray) -> np.ndarray:
        """Mask and compensate the model for ``coefficients`` ``(m,)``; returns the counts."""
        counts = self.counts(coefficients)
        self.apply_counts(counts)
        return counts

    def restore(self) -> None:
        """Restore every dense parameter (and BatchNorm statistic) bit for bit."""
        self.masker.restore()
        if self.recalibration is not None:
            self.recalibration.restore()
            self._calibrated[:] = 0

    def sparsity(self, coefficients: np.ndarray) -> np.ndarray:
        """Exact achieved sparsity (fraction 0–1) of ``(m,)`` or ``(K, m)`` coefficients."""
        return self.counter.sparsity(self.counts(coefficients))

    def sparsity_estimate(self, coefficients: np.ndarray) -> np.ndarray:
        """The paper's ``Σ c_i s_i / ‖θ‖₀`` (eq. 1b), fraction 0–1."""
        return self.counter.estimate(coefficients)


def _refit(module: nn.Module, statistics, ridge: float) -> LeastSquaresRefit:
    """The least-squares refit of a Linear or convolution consumer from its statistics."""
    weight = module.weight.detach()
    bias = module.bias if module.bias is not None else weight.new_zeros(len(weight))
    return LeastSquaresRefit(
        weight.reshape(len(weight), -1), bias, statistics.column_mean, statistics.covariance,
        ridge, columns_per_channel=weight[0, 0].numel(),
    )  # fmt: skip
