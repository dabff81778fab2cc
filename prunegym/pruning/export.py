"""Physically smaller models: remove masked channels with Torch-Pruning and save the result.

The masked model already holds the compensated biases and zeros in every masked entry, so
removing those entries with Torch-Pruning gives a smaller model that computes the same
function. :func:`save_exported` writes a ``torch.export`` program that plain PyTorch loads
without prunegym::

    program = torch.export.load("pruned.pt2")
    model = program.module()
    outputs = model(*example_inputs)
"""

from __future__ import annotations

import copy
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from prunegym.pruning.channel.attention import remove_heads, sync_widths
from prunegym.pruning.channel.groups import PruningGroup
from prunegym.pruning.channel.layer_norm import KeptLayerNorm


def physically_prune(
    masked: nn.Module,
    groups: list[PruningGroup],
    orders: list[torch.Tensor],
    counts: np.ndarray,
    example_inputs,
) -> nn.Module:
    """A copy of ``masked`` with the ``counts[i]`` least important channels of every group
    removed (``orders[i][:counts[i]]``, the channels the masks zeroed)."""
    pruned = copy.deepcopy(masked).eval()
    for module in pruned.modules():
        if isinstance(module, KeptLayerNorm):  # its width becomes the kept channels
            module.channel_keep = None
    with warnings.catch_warnings(), torch.enable_grad():  # tracing needs autograd, even here
        warnings.simplefilter("ignore")
        graph = tp.DependencyGraph().build_dependency(pruned, example_inputs=example_inputs)
    names = {module: name for name, module in masked.named_modules()}
    modules = dict(pruned.named_modules())
    for group, order, count in zip(groups, orders, counts, strict=True):
        if count == 0:
            continue
        if group.tp_group is None:  # attention heads: cut out of the HeadAttention itself
            attention = modules[group.modules[0].rpartition(".")[0]]
            remove_heads(attention, order[: int(count)].tolist())
            continue
        root = group.tp_group[0].dep
        layer = modules[names[root.target.module]]
        graph.get_pruning_group(layer, root.handler, order[: int(count)].tolist()).prune()
    sync_widths(pruned)
    return pruned


def model_cost(model: nn.Module, example_inputs) -> tuple[int, int]:
    """``(MACs per sample, parameters)``: Torch-Pruning's counter on the first sample of
    ``example_inputs`` (its count for a batch is not batch size × the count for one sample, so
    one sample is what is counted)."""
    inputs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    inputs = tuple(x[:1] if isinstance(x, torch.Tensor) else x for x in inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        macs, parameters = tp.utils.count_ops_and_params(model, inputs)
    return int(macs), int(parameters)


@torch.no_grad()
def measure_latency(forward, device: torch.device, repeats: int = 20, warmup: int = 3) -> float:
    """Median wall milliseconds of one ``forward()`` call on ``device`` (CUDA synchronised
    around each), after ``warmup`` untimed calls."""
    device = torch.device(device)
    synchronise = torch.cuda.synchronize if device.type == "cuda" else None
    times = []
    for run in range(warmup + repeats):
        if synchronise:
            synchronise(device)
        started = time.perf_counter()
        forward()
        if synchronise:
            synchronise(device)
        if run >= warmup:
            times.append(time.perf_counter() - started)
    return 1000.0 * float(np.median(times))


def save_exported(model: nn.Module, example_inputs, path: str | Path) -> Path:
    """Save ``model`` as a ``torch.export`` program (``.pt2``); returns the path."""
    inputs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    batch = torch.export.Dim.DYNAMIC  # any batch size, not the example's
    dynamic = tuple({0: batch} for _ in inputs)
    program = torch.export.export(model.eval(), inputs, dynamic_shapes=dynamic)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, path)
    return path


def removed_fractions(groups: list[PruningGroup], dense: nn.Module, pruned: nn.Module):
    """Per group, the fraction of its channels that ``pruned`` (a physically smaller copy of
    ``dense``, e.g. from Torch-Pruning) lacks, read from the shape of the group's first
    parameter slice (from ``num_heads`` for attention heads); ``(m,)`` float64."""
    before = {name: p.shape for name, p in dense.named_parameters()}
    after = {name: p.shape for name, p in pruned.named_parameters()}
    removed = []
    for group in groups:
        if group.tp_group is None:  # attention heads (nn.MultiheadAttention or HeadAttention)
            attention = group.modules[0].rpartition(".")[0]
            heads = [m.get_submodule(attention).num_heads for m in (dense, pruned)]
            removed.append((heads[0] - heads[1]) / group.channels)
            continue
        piece = group.slices[0]
        removed.append(
            (before[piece.param][piece.dim] - after[piece.param][piece.dim]) / len(piece.index)
        )
    return np.asarray(removed, dtype=np.float64)
