"""Weight-level importance of fully-connected layers (Ballini et al., elimination-compensation).

Every criterion scores each entry ``W_ij`` of each ``nn.Linear`` weight; low scores are pruned
first. Notation (per layer): ``z`` the layer input ``(N, n_in)``, ``a = W z + b`` its
pre-activation ``(N, n_out)``, ``y`` the network output ``(N, K)``, ``g_ik = ∂y_k/∂a_i``.

- ``magnitude``: ``|W_ij|``.
- ``gradient-magnitude``: ``|W_ij · ∂L/∂W_ij|`` with the task loss averaged over the data.
- ``random``: seeded uniform scores.
- ``elimination-compensation`` (eq. 5–7, vector output): with ``A_i = E[Σ_k g_ik²]``,
  ``B_ij = E[Σ_k g_ik² z_j]`` and ``C_ij = E[Σ_k g_ik² z_j²]``, the optimal bias shift for
  removing ``W_ij`` is ``Δb_ij = W_ij B_ij / A_i`` and the importance is the first-order output
  error left after it, ``I_ij = W_ij² (C_ij − B_ij²/A_i)``. One backward pass per output ``k``
  and batch gives every ``g``.
- ``nonlinear`` (eq. 3): the true mean squared output change when ``W_ij`` is zeroed and
  ``b_i`` shifted by ``W_ij E[z_j]``; one forward pass per weight, so it refuses networks with
  more than ``max_weights`` weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

WEIGHT_CRITERIA = (
    "magnitude",
    "gradient-magnitude",
    "random",
    "elimination-compensation",
    "nonlinear",
)
NONLINEAR_MAX_WEIGHTS = 60_000


class TooLargeForBruteForce(ValueError):
    """The brute-force ``nonlinear`` criterion was asked for a network it would take too long on."""


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The model's ``nn.Linear`` layers in module order (forward order for MLPs)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def weight_count(layers: Iterable[nn.Linear]) -> int:
    """``|W|``: the number of weight entries (biases excluded), as in the paper's Tables 1–2."""
    return sum(layer.weight.numel() for layer in layers)


class _Recorder:
    """Forward hooks that keep each layer's input ``z`` and pre-activation ``a`` (with grad)."""

    def __init__(self, layers: list[nn.Linear]) -> None:
        self.inputs: dict[nn.Linear, torch.Tensor] = {}
        self.outputs: dict[nn.Linear, torch.Tensor] = {}
        self.handles = [layer.register_forward_hook(self._hook) for layer in layers]

    def _hook(self, layer, inputs, output) -> None:
        self.inputs[layer] = inputs[0].detach()
        if output.requires_grad:
            output.retain_grad()
        self.outputs[layer] = output

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def compensation_statistics(
    model: nn.Module,
    batches: Iterable,
    forward: Callable[[nn.Module, object], torch.Tensor],
    layers: list[nn.Linear] | None = None,
) -> dict[nn.Linear, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``{layer: (A (n_out,), B (n_out, n_in), C (n_out, n_in))}``, means over all samples.

    ``forward(model, batch)`` returns the network output ``(N, K)``; samples must not interact
    (eval mode), so the gradient of ``Σ_n y_nk`` with respect to ``a`` is per-sample.
    """
    layers = linear_layers(model) if layers is None else layers
    sums = {
        layer: [
            torch.zeros(layer.out_features, dtype=torch.float64, device=layer.weight.device),
            torch.zeros(
                layer.out_features,
                layer.in_features,
                dtype=torch.float64,
                device=layer.weight.device,
            ),
            torch.zeros(
                layer.out_features,
                layer.in_features,
                dtype=torch.float64,
                device=layer.weight.device,
            ),
        ]
        for layer in layers
    }
    samples = 0
    recorder = _Recorder(layers)
    try:
        for batch in batches:
            output = forward(model, batch)
            output = output.reshape(output.shape[0], -1)
            squared = {layer: 0.0 for layer in layers}
            for k in range(output.shape[1]):
                for layer in layers:
                    recorder.outputs[layer].grad = None
                output[:, k].sum().backward(retain_graph=k + 1 < output.shape[1])
                for layer in layers:
                    gradient = recorder.outputs[layer].grad.double()
                    squared[layer] = squared[layer] + gradient.reshape(-1, gradient.shape[-1]) ** 2
            for layer in layers:
                g2 = squared[layer]  # (N, n_out): Σ_k g_ik² per sample
                z = recorder.inputs[layer].double().reshape(-1, layer.in_features)
                a, b, c = sums[layer]
                a += g2.sum(0)
                b += g2.T @ z
                c += g2.T @ z**2
            samples += output.shape[0]
    finally:
        recorder.close()
        model.zero_grad(set_to_none=True)
    if samples == 0:
        raise ValueError("no calibration batches: elimination-compensation needs data")
    return {layer: tuple(t / samples for t in sums[layer]) for layer in layers}


def optimal_shift(layer: nn.Linear, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Eq. 7: ``Δb_ij = W_ij B_ij / A_i`` (weight-shaped, float32)."""
    return (layer.weight.detach().double() * b / a.clamp_min(1e-30)[:, None]).float()


@torch.no_grad()
def mean_shifts(
    model: nn.Module, inputs: torch.Tensor, layers: list[nn.Linear]
) -> dict[nn.Linear, torch.Tensor]:
    """Eq. 3's shift ``Δb_ij = W_ij E[z_j]``, with ``E[z_j]`` the mean input of each layer over
    ``inputs`` (one forward pass)."""
    means = {}
    handles = [
        layer.register_forward_hook(
            lambda m, args, out: means.__setitem__(m, args[0].reshape(-1, m.in_features).mean(0))
        )
        for layer in layers
    ]
    try:
        model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return {layer: layer.weight.detach() * means[layer][None, :] for layer in layers}


def elimination_compensation(
    model: nn.Module, batches: Iterable, forward, layers: list[nn.Linear] | None = None
) -> tuple[dict[nn.Linear, torch.Tensor], dict[nn.Linear, torch.Tensor]]:
    """``(importance, Δb)`` per layer, both shaped like the weight: ``I_ij`` and ``Δb_ij``."""
    stats = compensation_statistics(model, batches, forward, layers)
    scores, shifts = {}, {}
    for layer, (a, b, c) in stats.items():
        weight = layer.weight.detach().double()
        shifts[layer] = optimal_shift(layer, a, b)
        residual = (c - b**2 / a.clamp_min(1e-30)[:, None]).clamp_min(
            0.0
        )  # ≥ 0 by Cauchy–Schwarz; clamp rounding
        scores[layer] = (weight**2 * residual).float()
    return scores, shifts


def gradient_magnitude(
    model: nn.Module, batches: Iterable, loss: Callable, layers: list[nn.Linear] | None = None
) -> dict[nn.Linear, torch.Tensor]:
    """``|W_ij · ∂L/∂W_ij|`` with ``L`` the mean of ``loss(model, batch)`` over the batches."""
    layers = linear_layers(model) if layers is None else layers
    model.zero_grad(set_to_none=True)
    count = 0
    for batch in batches:
        loss(model, batch).backward()
        count += 1
    if count == 0:
        raise ValueError("no calibration batches: gradient-magnitude needs data")
    scores = {layer: (layer.weight * layer.weight.grad / count).abs().detach() for layer in layers}
    model.zero_grad(set_to_none=True)
    return scores


@torch.no_grad()
def nonlinear_importance(
    model: nn.Module,
    inputs: torch.Tensor,
    layers: list[nn.Linear] | None = None,
    chunk: int = 256,
    max_weights: int = NONLINEAR_MAX_WEIGHTS,
) -> dict[nn.Linear, torch.Tensor]:
    """Eq. (3): ``E_x ‖y − y(W_ij ← 0, b_i += W_ij E[z_j])‖²`` for every weight, by brute force.

    ``inputs`` ``(N, ...)`` is a single tensor batch fed to ``model``. Each weight costs one
    forward pass over ``N`` samples (``chunk`` weights run as one stacked batch).

    Raises:
        TooLargeForBruteForce: if the layers hold more than ``max_weights`` weights.
    """
    layers = linear_layers(model) if layers is None else layers
    total = weight_count(layers)
    if total > max_weights:
        raise TooLargeForBruteForce(
            f"the nonlinear (brute-force) criterion needs one forward pass per weight: "
            f"{total:,} weights exceed max_weights={max_weights:,}; use "
            "elimination-compensation (its first-order version) or pass a larger max_weights"
        )
    recorder = _Recorder(layers)
    try:
        reference = model(inputs)
    finally:
        recorder.close()
    samples = inputs.shape[0]
    scores = {}
    for layer in layers:
        z = recorder.inputs[layer].reshape(samples, -1)
        mean = z.mean(0)
        rows, columns = layer.weight.shape
        flat = torch.empty(rows * columns, device=layer.weight.device)
        for start in range(0, rows * columns, chunk):
            index = torch.arange(start, min(start + chunk, rows * columns), device=flat.device)
            i, j = index // columns, index % columns
            # (k, N): the change of a_i for weight k on every sample
            delta = layer.weight[i, j][:, None] * (mean[j][:, None] - z[:, j].T)

            def perturb(module, args, output, i=i, delta=delta):
                output = output.reshape(len(i), samples, -1).clone()
                output[torch.arange(len(i), device=i.device), :, i] += delta
                return output.reshape(len(i) * samples, -1)

            handle = layer.register_forward_hook(perturb)
            try:
                stacked = inputs.repeat(len(index), *([1] * (inputs.dim() - 1)))
                changed = model(stacked).reshape(len(index), samples, -1)
            finally:
                handle.remove()
            difference = (changed - reference.reshape(1, samples, -1)) ** 2
            flat[index] = difference.sum(-1).mean(-1)
        scores[layer] = flat.reshape(rows, columns)
    return scores
