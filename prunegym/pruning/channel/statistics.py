"""Calibration statistics of the inputs of consumer layers (for importance and compensation).

For every consumer (a Linear or convolution reading pruned channels), with input channel ``z_j``
and pre-activation output ``a_i``:

- ``mean[j] = E[z_j]`` and ``var[j] = Var(z_j)``, over samples and spatial positions;
- optionally, with output sensitivities ``s_i = Σ_k (∂y_k/∂a_i)²`` per sample (estimated with
  Rademacher probes ``v``: ``E_v[(∂(v·y)/∂a_i)²] = Σ_k (∂y_k/∂a_i)²``):
  ``sensitivity[i] = E[s_i]`` (A_i) and ``weighted_mean[i, j] = E[s_i z_j]`` (B_ij) of the
  elimination-compensation paper, eq. 5–7. Convolutions use per-sample spatial means of ``z``
  and spatial sums of ``s``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ConsumerStatistics:
    """Input statistics of one consumer layer; shapes use ``in``/``out`` channel counts."""

    mean: torch.Tensor  # (in,)
    var: torch.Tensor  # (in,)
    sensitivity: torch.Tensor | None = None  # (out,)  A_i
    weighted_mean: torch.Tensor | None = None  # (out, in)  B_ij
    covariance: torch.Tensor | None = None  # (cols, cols) float64, centred
    column_mean: torch.Tensor | None = None  # (cols,) float64
    # cols: a Linear's inputs, or a convolution's patch entries (in·k², channel-major)


def _channels_last(inputs: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """Reshape a consumer's input to ``(samples, in_channels)`` (positions count as samples)."""
    if isinstance(module, nn.Linear):
        return inputs.reshape(-1, inputs.shape[-1])
    return inputs.transpose(0, 1).reshape(inputs.shape[1], -1).T


#: Largest ``in·k²`` of a convolution whose patch covariance is built for ``lsq``.
MAX_PATCH_COLUMNS = 2048


def patches_fit(module: nn.Module) -> bool:
    """Whether ``lsq`` refits ``module``: a Linear, or an ungrouped, non-transposed 2-D
    convolution with at most :data:`MAX_PATCH_COLUMNS` patch entries and zero padding."""
    if isinstance(module, nn.Linear):
        return True
    return (
        isinstance(module, nn.Conv2d)
        and module.groups == 1
        and module.padding_mode == "zeros"
        and isinstance(module.padding, tuple)
        and module.weight[0].numel() <= MAX_PATCH_COLUMNS
    )


def _patch_columns(inputs: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """``(samples, cols)``: a Linear's inputs, or every patch a convolution multiplies by its
    weight (``unfold``; columns channel-major, as ``weight.reshape(out, -1)``)."""
    if isinstance(module, nn.Linear):
        return inputs.reshape(-1, inputs.shape[-1])
    patches = nn.functional.unfold(
        inputs, module.kernel_size, module.dilation, module.padding, module.stride
    )  # (N, in·k², L)
    return patches.transpose(1, 2).reshape(-1, patches.shape[1])


def _per_sample_channels(tensor: torch.Tensor, module: nn.Module, reduce: str) -> torch.Tensor:
    """``(N, C)``: spatial mean (``reduce="mean"``) or sum of a conv tensor; Linear flattened."""
    if isinstance(module, nn.Linear):
        return tensor.reshape(-1, tensor.shape[-1])
    flat = tensor.reshape(tensor.shape[0], tensor.shape[1], -1)
    return flat.mean(-1) if reduce == "mean" else flat.sum(-1)


def collect_statistics(
    model: nn.Module,
    consumers: dict[str, nn.Module],
    batches: Iterable,
    forward: Callable[[nn.Module, object], torch.Tensor],
    probes: int = 0,
    seed: int = 0,
    covariance: bool = False,
) -> dict[str, ConsumerStatistics]:
    """Run ``model`` over ``batches`` and gather consumer input statistics.

    Args:
        model: Dense model in eval mode (not modified).
        consumers: Module name to consumer module.
        batches: Calibration batches.
        forward: ``forward(model, batch) -> output tensor``.
        probes: Rademacher probes per batch for output sensitivities; 0 skips them.
        seed: Seed of the probes.
        covariance: Also the centred covariance of the inputs of every Linear consumer and of
            the input patches of every convolution that :func:`patches_fit`.
    """
    sums = {name: None for name in consumers}
    inputs: dict[str, torch.Tensor] = {}
    outputs: dict[str, torch.Tensor] = {}

    def make_hook(name: str):
        def hook(module, args, output):
            inputs[name] = args[0]
            outputs[name] = output

        return hook

    handles = [module.register_forward_hook(make_hook(n)) for n, module in consumers.items()]
    generator = torch.Generator().manual_seed(seed)
    try:
        for batch in batches:
            with torch.set_grad_enabled(probes > 0):
                result = forward(model, batch)
            sensitivities = _sensitivities(result, outputs, probes, generator) if probes else {}
            for name, module in consumers.items():
                sums[name] = _accumulate(
                    sums[name], inputs[name], module, sensitivities.get(name), covariance
                )
            inputs.clear()
            outputs.clear()
    finally:
        for handle in handles:
            handle.remove()
    return {name: _finish(name, entry, probes > 0) for name, entry in sums.items()}


def _accumulate(
    entry: dict | None, z: torch.Tensor, module: nn.Module, sensitivity, covariance: bool
) -> dict:
    """Add one batch of a consumer's inputs ``z`` (and output sensitivities, if probed, and
    second moments of a Linear's inputs, if asked) to its running sums (float64)."""
    z = z.detach().double()
    flat = _channels_last(z, module)
    entry = entry or {
        "n": 0, "sum": 0.0, "sq": 0.0, "ns": 0, "A": 0.0, "B": 0.0,
        "np": 0, "psum": 0.0, "zz": None,
    }  # fmt: skip
    entry["n"] += flat.shape[0]
    entry["sum"] = entry["sum"] + flat.sum(0)
    entry["sq"] = entry["sq"] + (flat * flat).sum(0)
    if covariance and patches_fit(module):
        columns = _patch_columns(z, module)
        entry["np"] += columns.shape[0]
        entry["psum"] = entry["psum"] + columns.sum(0)
        products = columns.T @ columns
        entry["zz"] = products if entry["zz"] is None else entry["zz"] + products
    if sensitivity is not None:
        s = _per_sample_channels(sensitivity, module, "sum")
        zbar = _per_sample_channels(z, module, "mean")
        entry["ns"] += s.shape[0]
        entry["A"] = entry["A"] + s.sum(0)
        entry["B"] = entry["B"] + s.T @ zbar
    return entry


def _finish(name: str, entry: dict | None, probed: bool) -> ConsumerStatistics:
    """Means, variances and (if probed) sensitivities from a consumer's running sums."""
    if entry is None:
        raise RuntimeError(f"consumer layer {name!r} was never called during calibration")
    mean = entry["sum"] / entry["n"]
    var = (entry["sq"] / entry["n"] - mean * mean).clamp_min(0.0)
    result = ConsumerStatistics(mean.float(), var.float())
    if entry["zz"] is not None:
        columns_mean = entry["psum"] / entry["np"]
        result.covariance = entry["zz"] / entry["np"] - torch.outer(columns_mean, columns_mean)
        result.column_mean = columns_mean
    if probed:
        result.sensitivity = (entry["A"] / entry["ns"]).float()
        result.weighted_mean = (entry["B"] / entry["ns"]).float()
    return result


def _sensitivities(
    result: torch.Tensor,
    outputs: dict[str, torch.Tensor],
    probes: int,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """Per-sample ``Σ_k (∂y_k/∂a_i)²`` for every consumer output ``a``, by Rademacher probes."""
    names = list(outputs)
    targets = [outputs[name] for name in names]
    totals = [torch.zeros_like(t, dtype=torch.float64) for t in targets]
    for _ in range(probes):
        # Drawn on the CPU (the same probes on every device), then moved.
        signs = torch.randint(0, 2, result.shape, generator=generator, device="cpu")
        signs = signs.to(device=result.device, dtype=result.dtype) * 2 - 1
        grads = torch.autograd.grad(
            (result * signs).sum(), targets, retain_graph=True, allow_unused=True
        )
        for total, grad in zip(totals, grads, strict=True):
            if grad is not None:
                total += grad.double() ** 2
    return {name: total / probes for name, total in zip(names, totals, strict=True)}
