"""Structured bias compensation (elimination-compensation paper §3, adapted to channels).

When input channel ``j`` of a consumer is removed, the consumer's pre-activation ``a_i`` loses
``W_{ij} z_j``. The bias absorbs what can be predicted of it:

- ``mean``: ``Δb_i = W_{ij} E[z_j]``; for convolutions ``W_{ij}`` is the sum of the kernel
  entries and ``E[z_j]`` the spatial mean of the channel;
- ``optimal``: ``Δb_i = W_{ij} E[s_i z_j] / E[s_i]`` with output sensitivities ``s_i``
  (eq. 7); it falls back to ``mean`` for outputs with zero sensitivity;
- ``lsq``: Linear consumers and convolutions with ``k²·C_in ≤ 2048`` refit their kept weights
  and bias by ridge least squares (:mod:`prunegym.pruning.channel.least_squares`); other
  consumers get ``mean``.

Shifts add up over removed channels, so each consumer gets one ``(out, in)`` matrix ``M`` with
``Δb = M @ removed`` for a 0/1 vector ``removed`` over its input channels.
"""

from __future__ import annotations

import torch
from torch import nn

from prunegym.pruning.channel.importance import consumer_weight
from prunegym.pruning.channel.statistics import ConsumerStatistics

COMPENSATIONS = ("none", "mean", "optimal", "lsq")


def check_compensation(compensation: str) -> str:
    """Return ``compensation`` or raise ``ValueError`` listing the valid ones."""
    if compensation not in COMPENSATIONS:
        raise ValueError(
            f"unknown compensation {compensation!r}; valid compensations: "
            f"{', '.join(COMPENSATIONS)}"
        )
    return compensation


def compensation_matrix(
    module: nn.Module, statistics: ConsumerStatistics, compensation: str
) -> torch.Tensor:
    """``(out, in)`` float32 matrix ``M`` such that ``Δbias = M @ removed_inputs``."""
    weight = consumer_weight(module).float()
    summed = weight.reshape(weight.shape[0], weight.shape[1], -1).sum(-1)  # (out, in)
    mean_shift = summed * statistics.mean[None, :]
    if compensation in ("mean", "lsq"):  # lsq: the bias part of consumers without a refit
        return mean_shift
    if statistics.sensitivity is None or statistics.weighted_mean is None:
        raise ValueError("optimal compensation needs sensitivity statistics")
    sensitivity = statistics.sensitivity[:, None]
    ratio = statistics.weighted_mean / sensitivity.clamp_min(torch.finfo(torch.float32).tiny)
    optimal = summed * ratio
    return torch.where(sensitivity > 0, optimal, mean_shift)


def add_missing_biases(modules: list[nn.Module]) -> list[nn.Module]:
    """Give bias-free consumers a zero bias (function-preserving) to carry the compensation.

    Returns the modules that got one; a physical export keeps these biases.
    """
    added = []
    for module in modules:
        if module.bias is None:
            out_channels = consumer_weight(module).shape[0]
            module.bias = nn.Parameter(
                torch.zeros(out_channels, dtype=module.weight.dtype, device=module.weight.device)
            )
            added.append(module)
    return added
