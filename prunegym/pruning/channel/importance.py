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
- ``lsq``: the error that the least-squares refit cannot remove when channel ``j`` alone is
  dropped, ``Σ_consumers ‖W_{:,j}‖² / [(Σ + λI)⁻¹]_jj`` (OBS; ``compensated`` for consumers
  without a refit, such as convolutions).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable

import torch
import torch_pruning as tp
from torch import nn

from prunegym.pruning.channel.groups import PruningGroup
from prunegym.pruning.channel.least_squares import LeastSquaresRefit
from prunegym.pruning.channel.statistics import ConsumerStatistics

CRITERIA = ("l1", "l2", "random", "taylor", "compensated", "lsq", "bn-scale")


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
    refits: dict[str, LeastSquaresRefit] | None = None,
) -> torch.Tensor:
    """``(n_i,)`` residual importance ``Σ ‖W_{:,j}‖² Var(z_j)`` of each channel of ``group``;
    with ``refits``, the error left after the least-squares refit of each consumer that has one
    (:meth:`LeastSquaresRefit.removal_scores`) instead."""
    scores = torch.zeros(group.channels, dtype=torch.float64, device="cpu")  # as the orders
    for consumer in group.consumers:
        if refits and consumer.module in refits:
            residual = refits[consumer.module].removal_scores()
            scores.index_add_(0, consumer.root, residual[consumer.index.to(residual.device)].cpu())
            continue
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


def _score(scorer, model: nn.Module, group: PruningGroup, criterion: str):
    """Torch-Pruning's ``scorer`` on the group, or for a group prunegym made itself (attention
    heads, no Torch-Pruning group) the same criterion over its parameter slices: L1 or L2 norm,
    Taylor ``Σ|w·∂L/∂w|``, uniform random; ``None`` for ``bn-scale`` (no BatchNorm)."""
    if group.tp_group is not None:
        return scorer(group.tp_group)
    if criterion == "bn-scale":
        return None
    if criterion == "random":
        return torch.rand(group.channels, dtype=torch.float64)
    if criterion == "taylor":
        return _slice_sums(model, group, lambda w, g: (w * g).abs() if g is not None else 0 * w)
    return _slice_sums(model, group, lambda w, g: w.abs() if criterion == "l1" else w.pow(2))


def _slice_sums(model: nn.Module, group: PruningGroup, entry) -> torch.Tensor:
    """``(n_i,)`` float64 sum of ``entry(weight, gradient)`` (both float64; the gradient
    ``None`` if there is none) over each channel's parameter entries."""
    parameters = dict(model.named_parameters())
    sums = torch.zeros(group.channels, dtype=torch.float64, device="cpu")  # as the orders
    for piece in group.slices:
        parameter = parameters[piece.param]
        gradient = None if parameter.grad is None else parameter.grad.double()
        values = entry(parameter.detach().double(), gradient)
        values = values.index_select(piece.dim, piece.index.to(values.device))
        per_position = values.movedim(piece.dim, 0).reshape(len(piece.index), -1).sum(1)
        sums.index_add_(0, piece.root, per_position.cpu())
    return sums


def rank_channels(*args, **kwargs) -> list[torch.Tensor]:
    """Order each group's channels from least to most important (arguments as
    :func:`score_channels`): one ``(n_i,)`` int64 permutation per group; the first ``k``
    entries are masked for ``k`` pruned channels."""
    return orders_of(score_channels(*args, **kwargs))


def orders_of(scores: list[torch.Tensor]) -> list[torch.Tensor]:
    """Stable ascending orders of per-group scores."""
    return [torch.argsort(score, stable=True) for score in scores]


def score_channels(
    criterion: str,
    groups: list[PruningGroup],
    model: nn.Module,
    statistics: dict[str, ConsumerStatistics] | None = None,
    calibration_batches: Iterable | None = None,
    loss: Callable[[nn.Module, object], torch.Tensor] | None = None,
    seed: int = 0,
    refits: dict[str, LeastSquaresRefit] | None = None,
) -> list[torch.Tensor]:
    """Each group's channel importance under ``criterion`` (low: removed first).

    Args:
        criterion: One of :data:`CRITERIA`.
        groups: Groups found on ``model``.
        model: The dense model (its gradients are cleared again for ``taylor``).
        statistics: Consumer statistics (needed by ``compensated``).
        calibration_batches: Batches for ``taylor``.
        loss: ``loss(model, batch)`` for ``taylor``.
        seed: Seed of ``random``.
        refits: Least-squares refits of the Linear consumers (needed by ``lsq``).

    Returns:
        One ``(n_i,)`` float64 CPU score vector per group.
    """
    check_criterion(criterion)
    modules = dict(model.named_modules())
    if criterion in ("compensated", "lsq"):
        if statistics is None or (criterion == "lsq" and refits is None):
            raise ValueError(f"criterion {criterion!r} needs calibration statistics")
        used = refits if criterion == "lsq" else None
        scores = [compensated_scores(group, modules, statistics, used) for group in groups]
    elif criterion == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            scorer = tp.importance.RandomImportance()
            scores = [_score(scorer, model, group, criterion) for group in groups]
    elif criterion == "taylor":
        if calibration_batches is None or loss is None:
            raise ValueError("criterion 'taylor' needs calibration batches and a task loss")
        _accumulate_loss_gradients(model, calibration_batches, loss)
        scorer = tp.importance.GroupTaylorImportance()
        scores = [_score(scorer, model, group, criterion) for group in groups]
        model.zero_grad(set_to_none=True)
    elif criterion == "bn-scale":  # network slimming: |γ| of the group's BatchNorm
        scorer = tp.importance.BNScaleImportance()
        with torch.no_grad():
            scores = [_score(scorer, model, group, criterion) for group in groups]
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
            scores = [_score(scorer, model, group, criterion) for group in groups]
    scores = [score.detach().cpu().double() for score in scores]
    blank = [group.label for group, score in zip(groups, scores, strict=True)
             if not torch.isfinite(score).all()]  # fmt: skip
    if blank:
        warnings.warn(
            f"criterion {criterion!r} gives non-finite channel scores for groups {blank} (for "
            "taylor: the task loss has no gradient at the dense model); every channel of "
            "those groups scores 0, so they are pruned in index order",
            UninformativeScoresWarning,
            stacklevel=2,
        )
    return [score if torch.isfinite(score).all() else torch.zeros_like(score) for score in scores]


class UninformativeScoresWarning(UserWarning):
    """A criterion could not rank a group's channels: some of its scores were not finite, so
    the whole group scores 0 (index order)."""


def group_channel_norms(model: nn.Module, group: PruningGroup) -> torch.Tensor:
    """Per-channel L2 norm ``(n_i,)`` of every parameter entry that belongs to a channel.

    The entries are those a mask would zero: producer rows and biases, normalisation scales and
    shifts, consumer columns (the group's :class:`ChannelSlice` list).
    """
    return _slice_sums(model, group, lambda w, g: w.pow(2)).sqrt()
