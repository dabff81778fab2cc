"""The pruner interface shared by channel (structured) and weight (unstructured) pruning, and
the factory that picks one by granularity.

A pruner owns a model (it writes masks into it in place) and answers every question about
coefficients without evaluating the model: counts per group, zeroed parameters, sparsity.
Coefficient arrays are numpy ``(m,)`` or ``(K, m)`` on the host; masks live on the model's
device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from prunegym.pruning.channel.masks import ChannelMasker
from prunegym.pruning.channel.pruner import SoftPruner, check_probes
from prunegym.pruning.weight.pruner import WeightPruner

GRANULARITIES = ("channel", "weight")
DEFAULT_CRITERION = {"channel": "compensated", "weight": "elimination-compensation"}
DEFAULT_COMPENSATION = {"channel": "mean", "weight": "optimal"}


@runtime_checkable
class Pruner(Protocol):
    """What the environment needs from a pruner.

    Attributes:
        granularity: ``"channel"`` or ``"weight"``.
        groups: The pruning groups, one per coefficient (``index``, ``label``, ``channels``).
        channels: ``(m,)`` int64, the units ``n_i`` of each group (channels or weights).
        orders: Per group, unit indices from least to most important.
        total_parameters: ``‖θ‖₀``, every parameter entry of the dense model.
        masker: The :class:`ChannelMasker` (channel granularity; the sliced evaluation reads
            its masked parameters out of place), ``None`` for weight granularity.
    """

    granularity: str
    groups: Sequence
    channels: np.ndarray
    orders: list[torch.Tensor]
    total_parameters: int
    masker: ChannelMasker | None

    @property
    def applied_counts(self) -> np.ndarray:
        """``(m,)`` units masked per group in the model now."""

    def counts(self, coefficients: np.ndarray) -> np.ndarray:
        """Masked units per group, ``min(⌊c_i·n_i⌉, n_i − 1)``, for ``(m,)`` or ``(K, m)``."""

    def apply_counts(self, counts: np.ndarray) -> None:
        """Write the masks (and compensation) of ``counts`` ``(m,)`` into the model."""

    def restore(self) -> None:
        """Write the dense parameters back bit for bit."""

    def zeroed(self, counts: np.ndarray) -> np.ndarray:
        """Parameter entries zeroed by ``counts`` ``(m,)`` or ``(K, m)``."""

    def sparsity_estimate(self, coefficients: np.ndarray) -> np.ndarray:
        """The paper's estimate ``Σ c_i s_i / ‖θ‖₀`` (eq. 1b), fraction 0–1."""

    def group_norms(self) -> np.ndarray:
        """``(m,)`` a norm-based importance summary of each group in the dense model."""


def make_pruner(
    granularity: str,
    model: nn.Module,
    components: dict[str, nn.Module],
    example_inputs,
    calibration_batches: Callable[[], Iterable],
    forward: Callable[[nn.Module, object], torch.Tensor],
    criterion: str | None = None,
    compensation: str | None = None,
    **options,
) -> Pruner:
    """The pruner of ``granularity`` for ``model`` (modified in place: pass a copy you own).

    ``criterion`` and ``compensation`` default per granularity (:data:`DEFAULT_CRITERION`,
    :data:`DEFAULT_COMPENSATION`). ``options``: ``loss`` and ``seed`` for both;
    ``output_layers``, ``probes``, ``bn_recalibration`` and ``lsq_ridge`` for channel pruning
    (weight pruning has no use for them, nor for ``example_inputs``). See :class:`SoftPruner` and
    :class:`WeightPruner`.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    criterion = criterion or DEFAULT_CRITERION[granularity]
    compensation = compensation or DEFAULT_COMPENSATION[granularity]
    if granularity == "weight":
        if options.get("bn_recalibration"):
            raise ValueError("bn_recalibration needs channel granularity (weight masks leave "
                             "every channel's statistics in place)")  # fmt: skip
        check_probes(options.get("probes", 0), optimal=False)  # unused, but recorded
        dropped = ("output_layers", "probes", "bn_recalibration", "lsq_ridge")
        options = {k: v for k, v in options.items() if k not in dropped}
        return WeightPruner(
            model, components, calibration_batches, forward, criterion=criterion,
            compensation=compensation, **options,
        )  # fmt: skip
    return SoftPruner(
        model, components, example_inputs, calibration_batches, forward, criterion=criterion,
        compensation=compensation, **options,
    )  # fmt: skip
