"""Multiply-accumulates of convolutions and linear layers, dense and after channel masking.

Every entry of a convolution's weight takes part in one multiply-accumulate per output position
(``H_out·W_out``), and every entry of a linear layer's weight in one per token (the product of
its input's dimensions between the batch and the features). So the MACs of a model are
``Σ_layers positions_l · (weight entries of l)``, and masking removes ``positions_l`` MACs for
every weight entry it zeroes: the masked count follows from the same exact zero count as the
sparsity. Other operations (normalisation, activations, the attention products ``QKᵀ`` and
``AV``) are not counted.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def positions_per_weight_entry(model: nn.Module, example_inputs) -> dict[str, int]:
    """``{weight parameter name: output positions per sample}`` of every convolution and
    linear layer that ``model`` runs on ``example_inputs`` (batch first; one forward, called as
    Torch-Pruning does: ``model(*inputs)`` for a tuple or list, ``model(**inputs)`` for a dict,
    else ``model(inputs)``)."""
    positions: dict[str, int] = {}
    handles = []
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    for module in model.modules():
        if not isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            continue
        key = names[id(module.weight)]  # a tied weight by its first name

        def count(module, args, output, key=key):  # every call counts (a layer run twice)
            channels = output.shape[-1] if isinstance(module, nn.Linear) else output.shape[1]
            calls = output.numel() // (output.shape[0] * channels)
            positions[key] = positions.get(key, 0) + calls

        handles.append(module.register_forward_hook(count))
    try:
        if isinstance(example_inputs, (tuple, list)):
            model(*example_inputs)
        elif isinstance(example_inputs, dict):
            model(**example_inputs)
        else:
            model(example_inputs)
    finally:
        for handle in handles:
            handle.remove()
    return positions


def count_macs(model: nn.Module, example_inputs) -> int:
    """MACs per sample of ``model``'s convolutions and linear layers (see the module
    docstring)."""
    positions = positions_per_weight_entry(model, example_inputs)
    weights = dict(model.named_parameters())
    return int(sum(count * weights[name].numel() for name, count in positions.items()))
