"""K candidates' channel masks applied to activations, in one forward over the dense weights.

Masking channel ``j`` zeroes every parameter entry it owns. In a forward pass that is the same
as zeroing activations:

- the output rows of a Linear or convolution (weight and bias): its output channel ``j`` is 0;
- the input columns of a Linear or (ungrouped) convolution: its input channel ``j`` is 0;
- the per-channel parameters of a normalisation layer or PReLU: its output channel ``j`` is 0
  (its input channel is already 0, since the producer is masked too); a LayerNorm
  (:class:`KeptLayerNorm`) also takes each candidate's statistics over its kept channels;
- a compensated bias ``b + M·removed``: the candidate's shift ``M·removed`` added to the output.

So K candidates run as one forward of K stacked copies of the data through the *dense* weights:
forward hooks multiply each module's input and output channels by the candidate's 0/1 keep
vector and add its bias shift. The rows of candidate ``k`` are block ``k`` of the batch
(candidate-major). Blocks are made lazily: modules before the first mask see the ``N`` data
rows once, and the first masked module expands its tensor to ``K·N`` rows (the dense prefix,
such as the first layer's output, is computed once for all candidates). The masked model's
numbers are reproduced to float rounding (the same products, summed in other kernels).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from prunegym.pruning.channel.layer_norm import KeptLayerNorm, KeptLayerNorm2d
from prunegym.pruning.channel.masks import ChannelMasker

NORMALISATIONS = (
    nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm,
)  # fmt: skip


class UnsupportedBatching(ValueError):
    """A masked parameter belongs to a module whose masks cannot be moved to its activations."""


@dataclass(frozen=True)
class _ModuleMasks:
    """Where a module's masks act: ``inputs``/``outputs`` name the ``(parameter, dim, size)``
    whose keep vector multiplies the input/output channels (at ``axis`` of the activation),
    and ``compensated`` the bias that gains a shift (parameters by the masker's names)."""

    name: str
    module: nn.Module
    axis: int
    inputs: tuple[str, int, int] | None
    outputs: tuple[str, int, int] | None
    compensated: str | None


def _layout(module: nn.Module) -> tuple[int, int | None, int | None]:
    """``(activation channel axis, weight input dim, weight output dim)`` of a module type;
    ``UnsupportedBatching`` for others."""
    if isinstance(module, nn.Linear):
        return -1, 1, 0
    if isinstance(module, nn.modules.conv._ConvNd):
        input_dim, output_dim = (0, 1) if module.transposed else (1, 0)
        return 1, input_dim if module.groups == 1 else None, output_dim
    if isinstance(module, (*NORMALISATIONS, nn.PReLU)):
        return 1, None, 0
    if isinstance(module, nn.LayerNorm) and not isinstance(module, KeptLayerNorm):
        raise UnsupportedBatching(  # its statistics would include the masked channels
            "a masked LayerNorm must be a KeptLayerNorm (SoftPruner makes it one)"
        )
    if isinstance(module, KeptLayerNorm2d):
        return 1, None, 0
    if isinstance(module, nn.LayerNorm) and len(module.normalized_shape) == 1:
        return -1, None, 0
    raise UnsupportedBatching(
        f"masks on {type(module).__name__} parameters cannot be applied to activations"
    )


class CandidateMasks:
    """Applies K candidates' channel masks to activations while a forward runs (see the module
    docstring).

    Args:
        model: The model (dense weights; it is only read).
        masker: Its :class:`ChannelMasker` (groups, orders, compensation), on the same device.

    Raises:
        UnsupportedBatching: if a masked parameter sits in a module other than Linear,
            convolution, normalisation or PReLU, or a grouped convolution has masked inputs.
    """

    def __init__(self, model: nn.Module, masker: ChannelMasker) -> None:
        self.masker = masker
        self.plans: list[_ModuleMasks] = []
        names = {id(parameter): name for name, parameter in model.named_parameters()}
        for name, module in model.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and (
                module.training or module.running_mean is None
            ):
                raise UnsupportedBatching(
                    f"{name}: BatchNorm with batch statistics would mix the candidates"
                )
            # The masker names a parameter by its first name; a tied one is found by identity.
            own = {key: names[id(p)] for key, p in module.named_parameters(recurse=False)}
            shapes = dict(module.named_parameters(recurse=False))
            masked = [
                (key, dim)
                for key, full in own.items()
                for dim in range(shapes[key].dim())
                if masker.is_masked(full, dim)
            ]
            shifted = "bias" in own and masker.compensation(own["bias"]) is not None
            if not masked and not shifted:
                continue
            try:
                axis, input_dim, output_dim = _layout(module)
            except UnsupportedBatching as error:
                raise UnsupportedBatching(f"{name}: {error}") from None
            if any(key not in (("weight", input_dim), ("weight", output_dim), ("bias", 0))
                   for key in masked):  # fmt: skip
                raise UnsupportedBatching(
                    f"{name}: {type(module).__name__} has masks that are neither its input nor "
                    "its output channels"
                )

            sides = {(key, dim): (own[key], dim, shapes[key].shape[dim]) for key, dim in masked}
            outputs = next((key for key, dim in masked if dim == output_dim), "weight")
            self.plans.append(_ModuleMasks(
                name, module, axis, inputs=sides.get(("weight", input_dim)),
                outputs=sides.get((outputs, output_dim)),
                compensated=own["bias"] if shifted else None,
            ))  # fmt: skip

    def _factors(self, counts: np.ndarray):
        """Per plan ``(keep_in (K, C_in) | None, keep_out (K, C_out) | None, shift (K, C_out) |
        None)`` for ``counts`` ``(K, m)``, on the masker's device."""
        masker = self.masker
        keeps = masker.stacked_keep_vectors(counts)
        factors = []
        for plan in self.plans:
            sides = [
                None if side is None else masker.dim_keep(*side, keeps)
                for side in (plan.inputs, plan.outputs)
            ]
            shift = None
            if plan.compensated is not None:
                matrix, weight, in_dim = masker.compensation(plan.compensated)
                removed = 1.0 - masker.dim_keep(weight, in_dim, matrix.shape[1], keeps)
                shift = removed.to(matrix.dtype) @ matrix.T
            factors.append((*sides, shift))
        return factors

    @contextlib.contextmanager
    def applied(self, counts: np.ndarray, rows: int) -> Iterator[None]:
        """While inside, forwards of ``model`` compute the K candidates of ``counts`` ``(K, m)``:
        a tensor of ``rows`` rows (one copy of the data) is expanded to ``K·rows`` at the first
        masked module; the output holds candidate ``k``'s rows at ``[k·rows, (k+1)·rows)``."""
        count = len(counts)
        factors = self._factors(counts)
        handles, norms = [], []

        def blocks(tensor: torch.Tensor, name: str) -> torch.Tensor:
            if tensor.shape[0] == rows * count:
                return tensor
            if tensor.shape[0] != rows:
                raise UnsupportedBatching(
                    f"{name} saw {tensor.shape[0]} rows; batched evaluation expects {rows} (one "
                    f"copy of the data) or {rows * count} ({count} candidates)"
                )
            return tensor.unsqueeze(0).expand(count, *tensor.shape).reshape(-1, *tensor.shape[1:])

        def scaled(tensor: torch.Tensor, axis: int, factor: torch.Tensor, add: bool = False):
            shape = [count, 1, *([1] * (tensor.dim() - 1))]
            shape[axis + 1 if axis >= 0 else axis] = factor.shape[1]
            view = tensor.reshape(count, -1, *tensor.shape[1:])
            factor = factor.to(view.dtype).view(shape)
            return (view + factor if add else view * factor).reshape(tensor.shape)

        for plan, (keep_in, keep_out, shift) in zip(self.plans, factors, strict=True):
            if isinstance(plan.module, KeptLayerNorm) and keep_out is not None:

                def kept(module, args, plan=plan, keep_out=keep_out):
                    module.channel_keep = keep_out  # (K, C): each candidate's statistics
                    return (blocks(args[0], plan.name), *args[1:])

                handles.append(plan.module.register_forward_pre_hook(kept))
                norms.append((plan.module, plan.module.channel_keep))
            if keep_in is not None:

                def before(module, args, plan=plan, keep_in=keep_in):
                    x = blocks(args[0], plan.name)
                    return (scaled(x, plan.axis, keep_in), *args[1:])

                handles.append(plan.module.register_forward_pre_hook(before))

            def after(module, args, output, plan=plan, keep_out=keep_out, shift=shift):
                output = blocks(output, plan.name)
                if shift is not None:
                    output = scaled(output, plan.axis, shift, add=True)
                if keep_out is not None:
                    output = scaled(output, plan.axis, keep_out)
                return output

            handles.append(plan.module.register_forward_hook(after))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
            for norm, keep in norms:
                norm.channel_keep = keep
