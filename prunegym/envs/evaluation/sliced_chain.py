"""Evaluate many masked candidates of a layer chain at once, physically sliced, sharing prefixes.

A *chain* is a model whose evaluation forward is a flat sequence of ``nn.Linear`` layers and
elementwise activations (an MLP, the MNIST autoencoder). A channel mask zeroes a producer's rows
and the consumer's columns, so the masked chain computes exactly what the chain with those
rows and columns *removed* computes. This module evaluates candidates that way:

- **sliced layers**: each Linear keeps only its unmasked rows and columns (``index_select`` of
  the dense weight, the masked and compensated bias), so a candidate at sparsity ``s`` costs
  roughly ``1 − s`` of a dense forward;
- **shared prefixes**: the candidates are sorted so that those with equal counts for every
  group that reaches layer ``l`` are adjacent; layer ``l``'s activation is then computed once
  for all of them and kept on a stack (one activation per layer);
- **first layer once**: a Linear whose input is never masked (the first layer) is computed
  dense once per batch; each candidate selects its kept output columns;
- **least squares**: with ``compensation="lsq"`` a consumer's sliced weight and bias are its
  refit (:meth:`ChannelMasker.refit_value`), cached with the other sliced layers.

Nothing here writes to the model; the masked parameters come from :class:`ChannelMasker`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from prunegym.pruning.channel.masks import ChannelMasker

ELEMENTWISE = (
    nn.ReLU, nn.Sigmoid, nn.Tanh, nn.ELU, nn.GELU, nn.LeakyReLU, nn.SiLU, nn.Softplus,
    nn.Identity,
)  # fmt: skip


class UnsupportedChain(ValueError):
    """The model cannot be evaluated as a sliced chain (a module other than Linear or an
    elementwise activation, or masks that do not line up between consecutive layers)."""


@dataclass
class _LinearStep:
    name: str
    module: nn.Linear
    after: list[nn.Module] = field(default_factory=list)  # elementwise modules that follow
    own: tuple[int, ...] = ()  # groups whose counts change this layer's weight or bias
    prefix: tuple[int, ...] = ()  # groups that reach this layer's output (cumulative)
    sliced: OrderedDict = field(default_factory=OrderedDict)  # counts -> sliced layer (LRU)
    refit: bool = False  # least-squares compensation moves its kept weights too

    def activate(self, values: torch.Tensor) -> torch.Tensor:
        """The activations after the layer, in place on ``values`` (a fresh layer output)
        where the module is ReLU or Sigmoid."""
        for module in self.after:
            if type(module) is nn.ReLU:
                values = values.relu_()
            elif type(module) is nn.Sigmoid:
                values = values.sigmoid_()
            else:
                values = module(values)
        return values


class SlicedChain:
    """Outputs of many masked candidates of a chain, evaluated sliced with shared prefixes.

    Args:
        model: The model that owns the chain's modules (for their names).
        masker: The model's :class:`ChannelMasker` (groups, orders, compensation).
        chain: The evaluation forward as modules applied in order to ``inputs``.
        inputs: ``(N, features)`` evaluation inputs of the first layer.
        keep_layers: Sliced versions kept per layer (least recently used dropped first); at
            most this many copies of each weight stay in memory.

    Raises:
        UnsupportedChain: if the chain holds other modules, or a layer's input mask is not its
            predecessor's output mask.
    """

    def __init__(
        self,
        model: nn.Module,
        masker: ChannelMasker,
        chain: list[nn.Module],
        inputs: torch.Tensor,
        keep_layers: int = 16,
    ) -> None:
        names = {id(module): name for name, module in model.named_modules()}
        self.masker = masker
        self.inputs = inputs
        self.keep_layers = keep_layers
        self.steps: list[_LinearStep] = []
        for module in chain:
            if isinstance(module, nn.Linear):
                if id(module) not in names:
                    raise UnsupportedChain("a chain module is not part of the model")
                self.steps.append(_LinearStep(names[id(module)], module))
            elif isinstance(module, ELEMENTWISE) and self.steps:
                self.steps[-1].after.append(module)
            else:
                raise UnsupportedChain(
                    f"sliced evaluation supports Linear layers and elementwise activations "
                    f"after them, not {type(module).__name__}"
                )
        if not self.steps:
            raise UnsupportedChain("the chain has no Linear layer")
        self._check_alignment()
        reached: set[int] = set()
        order: list[int] = []  # groups by the first layer they reach
        for step in self.steps:
            own = masker.dependencies(f"{step.name}.weight")
            own |= masker.dependencies(f"{step.name}.bias")
            step.own = tuple(sorted(own))
            step.refit = masker.refits(step.name)
            reached |= own
            order += sorted(own - set(order))
            step.prefix = tuple(sorted(reached))
        self.group_order = order
        self._first_dense: torch.Tensor | None = None
        self._second_dense: tuple | None = None  # (first activation, W, b, W·activation + b)
        self.by_difference = True  # the second layer by difference when few inputs are removed
        self.multiply_adds = 0  # of every matmul run, for benchmarks

    def _check_alignment(self) -> None:
        layout = self.masker.layout
        first = layout.get(f"{self.steps[0].name}.weight", {})
        if 1 in first:
            raise UnsupportedChain("the chain's first layer has masked inputs")
        for before, after in zip(self.steps, self.steps[1:], strict=False):
            out = layout.get(f"{before.name}.weight", {}).get(0)
            into = layout.get(f"{after.name}.weight", {}).get(1)
            same = (out is None and into is None) or (
                out is not None
                and into is not None
                and torch.equal(out.positions, into.positions)
                and torch.equal(out.groups, into.groups)
                and torch.equal(out.roots, into.roots)
            )
            if not same or before.module.out_features != after.module.in_features:
                raise UnsupportedChain(
                    f"{after.name}'s input channels are not masked like {before.name}'s outputs"
                )

    def _sliced(self, step: _LinearStep, counts: np.ndarray, keeps):
        """``(weight, bias, kept_out)`` of one layer for one candidate, cached by the counts
        of the groups that change it; ``keeps()`` gives the candidate's per-group keep vectors."""
        key = tuple(int(counts[g]) for g in step.own)
        cached = step.sliced.get(key)
        if cached is not None:
            step.sliced.move_to_end(key)
        else:
            weight_name, bias_name = f"{step.name}.weight", f"{step.name}.bias"
            weight, masker = step.module.weight, self.masker
            kept_out = torch.nonzero(masker.dim_keep(weight_name, 0, weight.shape[0], keeps()))
            kept_in = torch.nonzero(masker.dim_keep(weight_name, 1, weight.shape[1], keeps()))
            kept_out, kept_in = kept_out.flatten(), kept_in.flatten()
            refit = masker.refit_value(step.name, keeps())  # least squares: kept weights move
            sliced_weight = masker.dense_value(weight_name, weight) if refit is None else refit[0]
            if len(kept_out) < weight.shape[0]:
                sliced_weight = sliced_weight.index_select(0, kept_out)
            if len(kept_in) < weight.shape[1]:
                sliced_weight = sliced_weight.index_select(1, kept_in)
            bias = step.module.bias
            if bias is None:
                sliced_bias = None
            else:
                if refit is not None:
                    sliced_bias = refit[1]
                else:
                    sliced_bias = masker.masked_value(bias_name, bias.detach(), keeps())
                if len(kept_out) < weight.shape[0]:
                    sliced_bias = sliced_bias.index_select(0, kept_out)
            cached = step.sliced[key] = (sliced_weight, sliced_bias, kept_out)
            if len(step.sliced) > self.keep_layers:
                step.sliced.popitem(last=False)
        return cached

    @torch.no_grad()
    def outputs(self, counts: np.ndarray) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(k, output)`` for every row of ``counts`` ``(K, m)`` (masked channels per
        group), in an order that shares prefixes; ``output`` is the chain's ``(N, out)``
        result for candidate ``k`` and is only valid until the next item is produced."""
        counts = np.asarray(counts, dtype=np.int64)
        if len(counts) == 0:
            return
        columns = counts[:, self.group_order[::-1]].T if self.group_order else None
        order = np.lexsort(columns) if columns is not None else np.arange(len(counts))
        stack: list[tuple | None] = [None] * len(self.steps)  # (prefix key, values, kept)
        for k in order.tolist():
            row = counts[k]
            values = self.inputs
            memo: list[list[torch.Tensor]] = []

            def keeps(row=row, memo=memo) -> list[torch.Tensor]:
                if not memo:
                    memo.append(self.masker.keep_vectors(row))
                return memo[0]

            for index, step in enumerate(self.steps):
                key = tuple(int(row[g]) for g in step.prefix)
                held = stack[index]
                if held is not None and held[0] == key:
                    values, kept_out = held[1], held[2]
                    continue
                kept_in = kept_out if index == 1 else None  # the first layer's kept outputs
                weight, bias, kept_out = self._sliced(step, row, keeps)
                if index == 0:
                    values = self._first_layer(step).index_select(1, kept_out)
                elif (
                    index == 1
                    and self.by_difference
                    and not step.refit
                    and 3 * (step.module.in_features - len(kept_in)) < len(kept_in)
                ):
                    values = self._second_by_difference(step, kept_in, kept_out, bias)
                else:
                    values = nn.functional.linear(values, weight, bias)
                    self.multiply_adds += values.shape[0] * weight.shape[0] * weight.shape[1]
                values = step.activate(values)
                stack[index] = (key, values, kept_out)
                for later in range(index + 1, len(stack)):
                    stack[later] = None
            yield k, values

    def _second_by_difference(
        self, step: _LinearStep, kept_in: torch.Tensor, kept_out: torch.Tensor, bias
    ) -> torch.Tensor:
        """The second layer's pre-activation for one candidate, from its dense output on the
        dense first-layer activation ``A`` (computed once) minus what the removed inputs
        contributed: ``Z[:, o] − A[:, r] W[o, r]ᵀ + (b' − b)[o]`` for kept outputs ``o`` and
        removed inputs ``r``. It equals the sliced product to float rounding and costs the
        removed fraction of it (used when fewer than a quarter of the inputs are removed)."""
        if self._second_dense is None:
            first = self.steps[0]
            activation = first.activate(self._first_layer(first).clone())
            weight = self.masker.dense_value(f"{step.name}.weight", step.module.weight)
            dense_bias = step.module.bias
            if dense_bias is not None:
                dense_bias = self.masker.dense_value(f"{step.name}.bias", dense_bias)
            product = nn.functional.linear(activation, weight, dense_bias)
            self.multiply_adds += product.shape[0] * weight.shape[0] * weight.shape[1]
            self._second_dense = (activation, weight, dense_bias, product)
        activation, weight, dense_bias, product = self._second_dense
        keep = torch.ones(step.module.in_features, dtype=torch.bool, device=kept_in.device)
        keep[kept_in] = False
        removed = torch.nonzero(keep).flatten()
        values = product.index_select(1, kept_out)
        if bias is not None:
            values.add_(bias - dense_bias.index_select(0, kept_out))
        if len(removed):
            lost = weight.index_select(0, kept_out).index_select(1, removed)
            values.addmm_(activation.index_select(1, removed), lost.t(), alpha=-1.0)
            self.multiply_adds += values.shape[0] * lost.shape[0] * lost.shape[1]
        return values

    def _first_layer(self, step: _LinearStep) -> torch.Tensor:
        """The first layer's dense pre-activation ``(N, out)``, computed once: its inputs are
        never masked and its kept outputs keep their dense bias."""
        if self._first_dense is None:
            weight = self.masker.dense_value(f"{step.name}.weight", step.module.weight)
            bias = step.module.bias
            if bias is not None:
                bias = self.masker.dense_value(f"{step.name}.bias", bias)
            self._first_dense = nn.functional.linear(self.inputs, weight, bias)
            self.multiply_adds += self.inputs.shape[0] * weight.shape[0] * weight.shape[1]
        return self._first_dense
