"""Channel importance inside a group: Torch-Pruning's criteria plus the compensated residual.

Every criterion maps a group to ``(n_i,)`` scores, higher meaning more important; the
channels with the lowest scores are masked first.

- ``l1``, ``l2``: Torch-Pruning's ``GroupMagnitudeImportance`` with p = 1, 2.
- ``random``: Torch-Pruning's ``RandomImportance`` under a fixed seed.
- ``taylor``: Torch-Pruning's ``GroupTaylorImportance`` on gradients of the task loss over the
  calibration batches.
- ``compensated``: the error that mean bias compensation cannot remove when channel ``j`` is
  dropped, ``Σ_consumers ‖W_{:,j}‖² · Var(z_j)`` (DESIGN.md, structured bias compensation, with
  constant output sensitivity).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch_pruning as tp
from torch import nn

from prunegym.pruning.channel.groups import PruningGroup
from prunegym.pruning.channel.statistics import ConsumerStatistics

CRITERIA = ("l1", "l2", "random", "taylor", "compensated", "bn-scale")


def check_criterion(criterion: str) -> str:
    """Return ``criterion`` or raise ``ValueError`` listing the valid ones."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; valid criteria: {', '.join(CRITERIA)}")
    return criterion


def consumer_weight(module: nn.Module) -> torch.Tensor:
    """The consumer's weight as ``(out, in, *kernel)`` (ConvTranspose stores it swapped)."""
    weight = module.weight.detach()
    if isinstance(module, nn.modules.conv._ConvNd) and module.transposed:
        weight = weight.transpose(0, 1)
    return weight


def compensated_scores(
    group: PruningGroup,
    modules: dict[str, nn.Module],
    statistics: dict[str, ConsumerStatistics],
) -> torch.Tensor:
    """``(n_i,)`` residual importance ``Σ ‖W_{:,j}‖² Var(z_j)`` of each channel of ``group``."""
    scores = torch.zeros(group.channels, dtype=torch.float64, device="cpu")  # as the orders
    for consumer in group.consumers:
        weight = consumer_weight(modules[consumer.module]).double()
        column_energy = weight.transpose(0, 1).reshape(weight.shape[1], -1).pow(2).sum(1)
        variance = statistics[consumer.module].var.double().to(weight.device)
        index = consumer.index.to(weight.device)
        residual = (column_energy[index] * variance[index]).cpu()
        scores.index_add_(0, consumer.root, residual)
    return scores


def _accumulate_loss_gradients(
    model: nn.Module, batches: Iterable, loss: Callable[[nn.Module, object], torch.Tensor]
) -> None:
    model.zero_grad(set_to_none=True)
    for batch in batches:
        loss(model, batch).backward()


def rank_channels(
    criterion: str,
    groups: list[PruningGroup],
    model: nn.Module,
    statistics: dict[str, ConsumerStatistics] | None = None,
    calibration_batches: Iterable | None = None,
    loss: Callable[[nn.Module, object], torch.Tensor] | None = None,
    seed: int = 0,
) -> list[torch.Tensor]:
    """Order each group's channels from least to most important.

    Args:
        criterion: One of :data:`CRITERIA`.
        groups: Groups found on ``model``.
        model: The dense model (its gradients are cleared again for ``taylor``).
        statistics: Consumer statistics (needed by ``compensated``).
        calibration_batches: Batches for ``taylor``.
        loss: ``loss(model, batch)`` for ``taylor``.
        seed: Seed of ``random``.

    Returns:
        One ``(n_i,)`` int64 permutation per group; the first ``k`` entries are masked for
        ``k`` pruned channels.
    """
    check_criterion(criterion)
    modules = dict(model.named_modules())
    if criterion == "compensated":
        if statistics is None:
            raise ValueError("criterion 'compensated' needs calibration statistics")
        scores = [compensated_scores(group, modules, statistics) for group in groups]
    elif criterion == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            scorer = tp.importance.RandomImportance()
            scores = [scorer(group.tp_group) for group in groups]
    elif criterion == "taylor":
        if calibration_batches is None or loss is None:
            raise ValueError("criterion 'taylor' needs calibration batches and a task loss")
        _accumulate_loss_gradients(model, calibration_batches, loss)
        scorer = tp.importance.GroupTaylorImportance()
        scores = [scorer(group.tp_group) for group in groups]
        model.zero_grad(set_to_none=True)
    elif criterion == "bn-scale":  # network slimming: |γ| of the group's BatchNorm
        scorer = tp.importance.BNScaleImportance()
        with torch.no_grad():
            scores = [scorer(group.tp_group) for group in groups]
        missing = [
            group.label for group, score in zip(groups, scores, strict=True) if score is None
        ]
        if missing:
            raise ValueError(
                f"criterion 'bn-scale' ranks channels by BatchNorm scales, but groups {missing} "
                "have no BatchNorm layer; use l1, l2, taylor or compensated"
            )
    else:
        scorer = tp.importance.GroupMagnitudeImportance(p=1 if criterion == "l1" else 2)
        with torch.no_grad():
            scores = [scorer(group.tp_group) for group in groups]
    return [torch.argsort(score.detach().cpu().double(), stable=True) for score in scores]


def group_channel_norms(model: nn.Module, group: PruningGroup) -> torch.Tensor:
    """Per-channel L2 norm ``(n_i,)`` of every parameter entry that belongs to a channel.

    The entries are those a mask would zero: producer rows and biases, normalisation scales and
    shifts, consumer columns (the group's :class:`ChannelSlice` list).
    """
    parameters = dict(model.named_parameters())
    squares = torch.zeros(group.channels, dtype=torch.float64, device="cpu")  # as the orders
    for piece in group.slices:
        values = parameters[piece.param].detach().double()
        values = values.index_select(piece.dim, piece.index.to(values.device))
        per_position = values.pow(2).movedim(piece.dim, 0).reshape(len(piece.index), -1).sum(1)
        squares.index_add_(0, piece.root, per_position.cpu())
    return squares.sqrt()
