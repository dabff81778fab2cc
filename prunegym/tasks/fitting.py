"""Training after pruning: fine-tuning with fixed masks (train–prune–train)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn


def finetune(
    model: nn.Module,
    masks: dict[nn.Module, torch.Tensor],
    epochs: int,
    batches: Callable[[int], Iterable],
    loss: Callable[[nn.Module, object], torch.Tensor],
    learning_rate: float = 1e-3,
) -> list[float]:
    """Train ``model`` with Adam while every masked weight stays exactly zero.

    Args:
        masks: ``{layer: keep mask}`` (bool, shaped like ``layer.weight``) or
            ``{parameter: keep mask}`` (e.g. a BatchNorm bias); pruned entries get no gradient
            and are re-zeroed after every step (Adam's momentum cannot revive them).
        epochs: Passes over the data.
        batches: ``batches(epoch)`` yields the training batches of that epoch.
        loss: ``loss(model, batch)`` → scalar.

    Returns:
        The mean training loss of each epoch.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    keep = {}
    for key, mask in masks.items():
        parameter = key.weight if isinstance(key, nn.Module) else key
        keep[parameter] = mask.to(parameter.dtype)
    hooks = [p.register_hook(lambda grad, m=m: grad * m) for p, m in keep.items()]
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)

    @torch.no_grad()
    def rezero() -> None:
        for parameter, m in keep.items():
            parameter.mul_(m)

    try:
        return _train(model, optimizer, epochs, batches, loss, after_step=rezero)
    finally:
        for hook in hooks:
            hook.remove()


def _train(model, optimizer, epochs, batches, loss, before_step=None, after_step=None):
    """The epoch loop shared by :func:`finetune` and :func:`slimming`; returns the mean loss of
    each epoch and leaves the model in eval mode."""
    history = []
    model.train()
    try:
        for epoch in range(epochs):
            total, count = 0.0, 0
            for batch in batches(epoch):
                optimizer.zero_grad(set_to_none=True)
                value = loss(model, batch)
                value.backward()
                if before_step is not None:
                    before_step()
                optimizer.step()
                if after_step is not None:
                    after_step()
                total, count = total + float(value.detach()), count + 1
            history.append(total / max(count, 1))
    finally:
        model.eval()
    return history


def batchnorm_layers(model: nn.Module) -> list[nn.Module]:
    """Every ``BatchNorm1d/2d/3d`` of ``model`` with an affine scale ``γ``."""
    kinds = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    return [m for m in model.modules() if isinstance(m, kinds) and m.weight is not None]


@torch.no_grad()
def proximal_step(layers: list[nn.Module], threshold: float) -> None:
    """Soft-thresholding, the proximal operator of ``threshold·|γ|``:
    ``γ ← sign(γ)·max(|γ| − threshold, 0)``; every ``|γ| ≤ threshold`` becomes exactly 0."""
    for layer in layers:
        gamma = layer.weight
        gamma.copy_(gamma.sign() * (gamma.abs() - threshold).clamp_min(0.0))


def slimming(
    model: nn.Module,
    lam: float,
    epochs: int,
    batches: Callable[[int], Iterable],
    loss: Callable[[nn.Module, object], torch.Tensor],
    proximal: bool = False,
    learning_rate: float = 0.01,
    momentum: float = 0.9,
) -> list[float]:
    """Network slimming's sparsity training (Liu et al. 2017; the review's §3–4).

    SGD on ``loss + lam·Σ|γ|`` over every BatchNorm scale ``γ``. With ``proximal=False`` the
    L1 term enters as its subgradient ``lam·sign(γ)`` (the three-stage method: train sparse,
    prune by ``|γ|``, fine-tune); ``γ`` gets small but rarely exactly 0. With ``proximal=True``
    the data loss takes the SGD step and each step ends with :func:`proximal_step` at
    ``learning_rate·lam``, which sets small ``γ`` exactly to zero.

    Returns:
        The mean data loss of each epoch.
    """
    if lam < 0 or epochs < 0:
        raise ValueError(f"lam and epochs must be >= 0, got {lam} and {epochs}")
    layers = batchnorm_layers(model)
    if not layers:
        raise ValueError("slimming needs BatchNorm layers with a scale γ; the model has none")
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=momentum)

    def add_subgradient() -> None:
        for layer in layers:
            layer.weight.grad.add_(lam * layer.weight.detach().sign())

    if proximal:
        return _train(model, optimizer, epochs, batches, loss,
                      after_step=lambda: proximal_step(layers, learning_rate * lam))  # fmt: skip
    return _train(model, optimizer, epochs, batches, loss, before_step=add_subgradient)
