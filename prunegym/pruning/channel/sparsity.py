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
        self._tables()

    def _tables(self) -> None:
        """The counts as a few array operations (see :meth:`zeroed`): for every (parameter,
        dim, group) entry ``e``, ``removed[e][k]``, the positions it owns with rank below
        ``k`` (a row of ``(E, n_max + 1)``); which (parameter, dim) each entry adds to; and
        per (parameter, dim), its size and its parameter."""
        groups, dims, tables, sizes, params = [], [], [], [], []
        for param, (_, _, _, per_dim) in enumerate(self._entries):
            for size, owned in per_dim:
                for group, sorted_ranks in owned:
                    groups.append(group)
                    dims.append(len(sizes))
                    tables.append(sorted_ranks)
                sizes.append(size)
                params.append(param)
        widest = max((int(t.max()) + 1 for t in tables if len(t)), default=0)
        self._removed = np.stack(
            [np.searchsorted(t, np.arange(widest + 1), side="left") for t in tables]
        ) if tables else np.zeros((0, 1), dtype=np.int64)  # fmt: skip
        self._entry_group = np.asarray(groups, dtype=np.int64)
        self._entry_dim = np.asarray(dims, dtype=np.int64)
        self._dim_size = np.asarray(sizes, dtype=np.int64)
        self._dim_param = np.asarray(params, dtype=np.int64)
        self._numel = np.array([numel for _, numel, _, _ in self._entries], dtype=np.int64)
        self._rest = np.array([rest for _, _, rest, _ in self._entries], dtype=np.int64)
        # entries are stored dim by dim, and dims parameter by parameter: where each starts
        self._owned_dims = np.unique(self._entry_dim)
        self._dim_starts = np.searchsorted(self._entry_dim, self._owned_dims)
        self._param_starts = np.searchsorted(self._dim_param, np.arange(len(self._entries)))

    def zeroed(self, counts: np.ndarray, weights: dict[str, int] | None = None) -> np.ndarray:
        """Zeroed entries (int64, shape ``()`` or ``(K,)``) for ``(m,)`` or ``(K, m)`` counts;
        with ``weights``, each zeroed entry of parameter ``p`` counts ``weights[p]`` times
        (0 for parameters not named). A parameter keeps ``rest · Π_dims (size − removed)``
        entries, where ``removed`` sums, over the groups owning positions of that dim, the
        positions ranked below the group's count."""
        counts = np.asarray(counts, dtype=np.int64)
        batch = counts.reshape(-1, counts.shape[-1])
        if weights is None:
            scale = np.ones(len(self._entries), dtype=np.int64)
        else:
            scale = np.array([weights.get(name, 0) for name, *_ in self._entries], np.int64)
        chunk = 4096  # vectors at a time: the (E, K) intermediates stay in cache
        parts = [self._zeroed_columns(batch[i : i + chunk].T, scale)
                 for i in range(0, len(batch), chunk)]  # fmt: skip
        total = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return total.reshape(counts.shape[:-1])

    def _zeroed_columns(self, counts: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """:meth:`zeroed` for counts ``(m, K)``, one column per vector: ``(E, K)`` removed
        positions per entry, summed into ``(D, K)`` per dim, multiplied into ``(P, K)`` kept
        entries per parameter, all down the first axis."""
        if not self._entries:
            return np.zeros(counts.shape[1], dtype=np.int64)
        ceiling = self._removed.shape[1] - 1  # counts beyond every rank remove all positions
        columns = np.clip(counts[self._entry_group], 0, ceiling)
        by_entry = self._removed[np.arange(len(self._entry_group))[:, None], columns]
        removed = np.zeros((len(self._dim_size), counts.shape[1]), dtype=np.int64)
        removed[self._owned_dims] = np.add.reduceat(by_entry, self._dim_starts, axis=0)
        left = np.multiply.reduceat(self._dim_size[:, None] - removed, self._param_starts, axis=0)
        return scale @ (self._numel[:, None] - self._rest[:, None] * left)

    def sparsity(self, counts: np.ndarray) -> np.ndarray:
        """Achieved sparsity (fraction 0–1) for ``counts`` of shape ``(m,)`` or ``(K, m)``."""
        return self.zeroed(counts) / self.total

    def estimate(self, coefficients: np.ndarray) -> np.ndarray:
        """The paper's estimate ``Σ c_i s_i / ‖θ‖₀`` (eq. 1b); fraction 0–1."""
        return np.asarray(coefficients, dtype=np.float64) @ self.group_parameters / self.total
