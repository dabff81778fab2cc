"""Unstructured (weight-level) masks for fully-connected layers: score, rank, zero, compensate.

``weight_scores`` dispatches to the criteria of :mod:`prunegym.pruning.weight.importance`;
``global_masks`` keeps the highest-scoring weights over all layers (the paper's pruning ratio
``r = 1 − |W| / |W_original|``) and ``layer_masks`` one fraction per layer; ``apply_weight_masks``
zeroes the pruned weights and adds their bias shifts ``Σ_j Δb_ij`` (elimination-compensation).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from prunegym.pruning.weight.importance import (
    WEIGHT_CRITERIA,
    elimination_compensation,
    gradient_magnitude,
    linear_layers,
    mean_shifts,
    nonlinear_importance,
)

Scores = dict[nn.Linear, torch.Tensor]


def weight_scores(
    model: nn.Module,
    criterion: str,
    batches=(),
    forward=None,
    loss=None,
    inputs: torch.Tensor | None = None,
    seed: int = 0,
) -> tuple[Scores, Scores | None]:
    """``(scores, bias shifts or None)`` of every Linear weight of ``model`` for ``criterion``.

    Args:
        batches: Calibration batches (for ``gradient-magnitude`` and
            ``elimination-compensation``).
        forward: ``forward(model, batch) -> (N, K)`` outputs (elimination-compensation).
        loss: ``loss(model, batch) -> scalar`` (gradient-magnitude).
        inputs: One input tensor for the brute-force ``nonlinear`` criterion.
        seed: Seed of ``random``.
    """
    layers = linear_layers(model)
    if criterion == "magnitude":
        return {layer: layer.weight.detach().abs() for layer in layers}, None
    if criterion == "random":
        generator = torch.Generator().manual_seed(seed)
        return {
            layer: torch.rand(layer.weight.shape, generator=generator, device="cpu").to(
                layer.weight.device
            )
            for layer in layers
        }, None
    if criterion == "gradient-magnitude":
        if loss is None:
            raise ValueError("criterion 'gradient-magnitude' needs the task's loss")
        return gradient_magnitude(model, batches, loss, layers), None
    if criterion == "elimination-compensation":
        if forward is None:
            raise ValueError("criterion 'elimination-compensation' needs a forward function")
        return elimination_compensation(model, batches, forward, layers)
    if criterion == "nonlinear":
        if inputs is None:
            raise ValueError("criterion 'nonlinear' needs an input tensor")
        return nonlinear_importance(model, inputs, layers), mean_shifts(model, inputs, layers)
    raise ValueError(f"unknown weight criterion {criterion!r}; choose one of {WEIGHT_CRITERIA}")


def global_masks(scores: Scores, ratio: float) -> Scores:
    """Keep-masks (bool, weight-shaped) pruning the ``round(ratio·|W|)`` lowest scores over all
    layers together; ties go by position, so the result is deterministic."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"pruning ratio must lie in [0, 1), got {ratio!r}")
    flat = torch.cat([score.reshape(-1).double() for score in scores.values()])
    pruned = int(round(ratio * flat.numel()))
    keep = torch.ones(flat.numel(), dtype=torch.bool, device=flat.device)
    keep[torch.argsort(flat, stable=True)[:pruned]] = False
    masks, start = {}, 0
    for layer, score in scores.items():
        masks[layer] = keep[start : start + score.numel()].reshape(score.shape)
        start += score.numel()
    return masks


def layer_masks(scores: Scores, fractions) -> Scores:
    """Keep-masks pruning ``round(fractions[l]·|W_l|)`` lowest-scoring weights in each layer."""
    fractions = [float(f) for f in fractions]
    if len(fractions) != len(scores):
        raise ValueError(f"need {len(scores)} fractions, one per layer, got {len(fractions)}")
    masks = {}
    for (layer, score), fraction in zip(scores.items(), fractions, strict=True):
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"layer fractions must lie in [0, 1), got {fraction!r}")
        flat = score.reshape(-1).double()
        keep = torch.ones(flat.numel(), dtype=torch.bool, device=flat.device)
        keep[torch.argsort(flat, stable=True)[: int(round(fraction * flat.numel()))]] = False
        masks[layer] = keep.reshape(score.shape)
    return masks


@torch.no_grad()
def apply_weight_masks(masks: Scores, shifts: Scores | None = None) -> None:
    """Zero every pruned weight in place and, with ``shifts``, add ``Σ_j Δb_ij`` over the pruned
    ``j`` to each bias ``b_i`` (layers without a bias cannot take a shift: ``ValueError``)."""
    for layer, keep in masks.items():
        if shifts is not None:
            if layer.bias is None:
                raise ValueError(f"{layer} has no bias to take the compensation")
            layer.bias += (shifts[layer] * (~keep)).sum(1).to(layer.bias.dtype)
        layer.weight.mul_(keep.to(layer.weight.dtype))


def pruned_copy(
    model: nn.Module, scores: Scores, shifts: Scores | None, ratio: float
) -> tuple[nn.Module, Scores]:
    """A copy of ``model`` with the ``ratio`` lowest-scoring weights over all layers zeroed and
    their bias shifts applied (``scores``/``shifts`` are keyed by ``model``'s layers); returns
    the copy and its keep-masks, keyed by the copy's layers (for
    :func:`prunegym.tasks.fitting.finetune`).
    ``model`` itself is not modified."""
    pruned = copy.deepcopy(model)
    twins = dict(zip(model.modules(), pruned.modules(), strict=True))
    masks = {twins[layer]: keep for layer, keep in global_masks(scores, ratio).items()}
    moved = None if shifts is None else {twins[layer]: s for layer, s in shifts.items()}
    apply_weight_masks(masks, moved)
    return pruned, masks


def pruned_fraction(masks: Scores) -> float:
    """Fraction of all weights the masks remove."""
    total = sum(mask.numel() for mask in masks.values())
    return sum(int((~mask).sum()) for mask in masks.values()) / total
