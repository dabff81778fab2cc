"""Exact sparsity counting and the paper's estimate.

Definitions (documented in the README):

- ``‖θ‖₀`` is the number of parameter entries of the dense model, all of them, including
  layers outside every group (the output layer, for example).
- The *achieved sparsity* is the number of entries zeroed by channel masks over ``‖θ‖₀``.
  It is counted from the masks, not by testing for zeros, so weights that happen to be zero in
  the dense model never count.
- The paper's estimate (eq. 1b) is ``Σ c_i s_i / ‖θ‖₀`` with ``s_i`` the parameters of group
  ``i``. Groups share tensors (a consumer's weight belongs to two groups), so the estimate can
  differ from the exact count.
"""

from __future__ import annotations

import numpy as np
import torch

from prunegym.pruning.channel.masks import DimLayout


class SparsityCounter:
    """Counts zeroed parameters for any vector of per-group masked-channel counts.

    Args:
        layout: ``{param: {dim: DimLayout}}`` from
            :func:`prunegym.pruning.channel.masks.parameter_layout`.
        orders: Per group, channel indices from least to most important.
        shapes: Shape of every parameter of the model.
        group_parameters: ``s_i`` per group.
    """

    def __init__(
        self,
        layout: dict[str, dict[int, DimLayout]],
        orders: list[torch.Tensor],
        shapes: dict[str, torch.Size],
        group_parameters: list[int],
    ) -> None:
        self.total = int(sum(shape.numel() for shape in shapes.values()))
        self.group_parameters = np.asarray(group_parameters, dtype=np.float64)
        ranks = []
        for order in orders:
            rank = torch.empty_like(order)
            rank[order] = torch.arange(len(order), device=order.device)
            ranks.append(rank)
        # For every (param, dim): its size and, per group touching it, the sorted importance
        # ranks of the positions it owns; k masked channels remove the positions with rank < k.
        self._entries = []
        for name, dims in layout.items():
            shape = shapes[name]
            per_dim = []
            for dim, positions in dims.items():
                owned = [
                    (group, np.sort(ranks[group][roots.cpu()].numpy()))
                    for group, _, roots in positions.by_group
                ]
                per_dim.append((shape[dim], owned))
            rest = int(np.prod([s for d, s in enumerate(shape) if d not in dims], dtype=np.int64))
            self._entries.append((name, shape.numel(), rest, per_dim))

    def zeroed(self, counts: np.ndarray, weights: dict[str, int] | None = None) -> np.ndarray:
        """Zeroed entries (int64, shape ``()`` or ``(K,)``) for ``(m,)`` or ``(K, m)`` counts;
        with ``weights``, each zeroed entry of parameter ``p`` counts ``weights[p]`` times
        (0 for parameters not named)."""
        counts = np.asarray(counts, dtype=np.int64)
        batch = counts.reshape(-1, counts.shape[-1])
        total = np.zeros(len(batch), dtype=np.int64)
        for name, numel, rest, per_dim in self._entries:
            weight = 1 if weights is None else weights.get(name, 0)
            if weight == 0:
                continue
            kept = np.full(len(batch), rest, dtype=np.int64)
            for size, owned in per_dim:
                removed = np.zeros(len(batch), dtype=np.int64)
                for group, sorted_ranks in owned:
                    removed += np.searchsorted(sorted_ranks, batch[:, group], side="left")
                kept *= size - removed
            total += (numel - kept) * weight
        return total.reshape(counts.shape[:-1])

    def sparsity(self, counts: np.ndarray) -> np.ndarray:
        """Achieved sparsity (fraction 0–1) for ``counts`` of shape ``(m,)`` or ``(K, m)``."""
        return self.zeroed(counts) / self.total

    def estimate(self, coefficients: np.ndarray) -> np.ndarray:
        """The paper's estimate ``Σ c_i s_i / ‖θ‖₀`` (eq. 1b); fraction 0–1."""
        return np.asarray(coefficients, dtype=np.float64) @ self.group_parameters / self.total
