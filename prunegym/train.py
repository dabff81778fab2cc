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
        masks: ``{layer: keep mask}`` (bool, shaped like ``layer.weight``); pruned entries get
            no gradient and are re-zeroed after every step (Adam's momentum cannot revive them).
        epochs: Passes over the data.
        batches: ``batches(epoch)`` yields the training batches of that epoch.
        loss: ``loss(model, batch)`` → scalar.

    Returns:
        The mean training loss of each epoch.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    keep = {layer: mask.to(layer.weight.dtype) for layer, mask in masks.items()}
    hooks = [layer.weight.register_hook(lambda grad, m=m: grad * m) for layer, m in keep.items()]
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    history = []
    model.train()
    try:
        for epoch in range(epochs):
            total, count = 0.0, 0
            for batch in batches(epoch):
                optimizer.zero_grad(set_to_none=True)
                value = loss(model, batch)
                value.backward()
                optimizer.step()
                with torch.no_grad():
                    for layer, m in keep.items():
                        layer.weight.mul_(m)
                total, count = total + float(value.detach()), count + 1
            history.append(total / max(count, 1))
    finally:
        for hook in hooks:
            hook.remove()
        model.eval()
    return history
