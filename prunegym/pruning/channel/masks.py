"""Per-group channel masks applied in place by zeroing, with bias compensation.

A coefficient ``c_i`` masks ``k_i = min(⌊c_i·n_i⌉, n_i − 1)`` channels of group ``i`` (rounded
half up, and never the whole group): the first ``k_i`` of the group's importance order.
Masking a channel zeroes every parameter entry that belongs to it (the producer's rows and
bias, normalisation scales and shifts, the consumers' columns), and a LayerNorm leaves it out
of its statistics, so the masked model computes exactly what the physically pruned one does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from prunegym.pruning.channel.errors import UnsupportedLayerError
from prunegym.pruning.channel.groups import PruningGroup
from prunegym.pruning.channel.layer_norm import KeptLayerNorm
from prunegym.pruning.channel.least_squares import LeastSquaresRefit


@dataclass(frozen=True)
class DimLayout:
    """Channel positions along one dimension of one parameter, possibly from several groups.

    Attributes:
        positions: ``(k,)`` positions along the dimension.
        groups: ``(k,)`` group index of each position.
        roots: ``(k,)`` channel number within its group of each position.
    """

    positions: torch.Tensor
    groups: torch.Tensor
    roots: torch.Tensor

    @property
    def by_group(self) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        """``(group, positions, roots)`` for each group owning part of this dimension."""
        return [
            (group, self.positions[self.groups == group], self.roots[self.groups == group])
            for group in torch.unique(self.groups).tolist()
        ]


def parameter_layout(
    groups: list[PruningGroup], shapes: dict[str, torch.Size]
) -> dict[str, dict[int, DimLayout]]:
    """Merge all groups' slices into ``{param: {dim: DimLayout}}``.

    Raises:
        ValueError: if two groups claim the same position of a parameter.
    """
    claims: dict[tuple[str, int], dict[int, tuple[int, int]]] = {}
    for group in groups:
        for piece in group.slices:
            owners = claims.setdefault((piece.param, piece.dim), {})
            for position, root in zip(piece.index.tolist(), piece.root.tolist(), strict=True):
                owner = (group.index, root)
                if owners.setdefault(position, owner) != owner:
                    raise ValueError(
                        f"{piece.param} dim {piece.dim} position {position} is claimed by "
                        f"groups {owners[position][0]} and {group.index}"
                    )
    layout: dict[str, dict[int, DimLayout]] = {}
    for (param, dim), owners in sorted(claims.items()):
        if param not in shapes:
            raise ValueError(f"group slice names unknown parameter {param!r}")
        positions = sorted(owners)
        layout.setdefault(param, {})[dim] = DimLayout(
            torch.tensor(positions, dtype=torch.long, device="cpu"),
            torch.tensor([owners[p][0] for p in positions], dtype=torch.long, device="cpu"),
            torch.tensor([owners[p][1] for p in positions], dtype=torch.long, device="cpu"),
        )
    return layout


def pruned_counts(coefficients: np.ndarray, channels: np.ndarray) -> np.ndarray:
    """Channels masked per group, ``min(⌊c_i·n_i⌉, n_i − 1)`` for ``(..., m)`` arrays.

    Rounded half up, and capped so that every group keeps at least one channel: without the
    cap, ``c = 0.95`` rounds to the whole group when ``n_i ≤ 10``, and the group is cut.
    """
    coefficients = np.asarray(coefficients, dtype=np.float64)
    if not np.all(np.isfinite(coefficients)):
        raise ValueError("coefficients must be finite (NaN or infinity given)")
    channels = np.asarray(channels, dtype=np.int64)
    rounded = np.floor(coefficients * channels + 0.5)
    return np.minimum(rounded.astype(np.int64), np.maximum(channels - 1, 0))


@dataclass
class _ParameterPlan:
    name: str
    live: torch.Tensor  # the model's parameter data, written in place
    dense: torch.Tensor  # bit-exact copy of the dense values
    dims: dict[int, DimLayout]
    depends_on: frozenset[int]
    shift: torch.Tensor | None = None  # (out, in) compensation matrix for a consumer bias
    shift_source: tuple[str, int] | None = None  # (weight parameter, input dim)


class ChannelMasker:
    """Writes masked and compensated parameters into a model, and restores the dense ones.

    Args:
        model: The model to mask in place (the environment's own copy).
        groups: Its pruning groups.
        orders: Per group, channel indices from least to most important.
        compensation: Consumer module name to ``(out, in)`` matrix ``M``; the consumer's bias
            becomes ``dense_bias + M @ removed_inputs``.
        refits: Consumer name to its least-squares refit: its weight and bias become the refit
            ones for its kept inputs (then masked as usual).
    """

    def __init__(
        self,
        model: nn.Module,
        groups: list[PruningGroup],
        orders: list[torch.Tensor],
        compensation: dict[str, torch.Tensor] | None = None,
        refits: dict[str, LeastSquaresRefit] | None = None,
    ) -> None:
        params = dict(model.named_parameters())
        modules = dict(model.named_modules())
        #: Where the model's parameters live; every mask tensor is made there.
        self.device = next(iter(params.values())).device if params else torch.device("cpu")
        self.groups = groups
        self.orders = [order.to(self.device) for order in orders]
        self.ranks = [torch.empty_like(order) for order in self.orders]  # rank[order[j]] = j
        for rank, order in zip(self.ranks, self.orders, strict=True):
            rank[order] = torch.arange(len(order), device=self.device)
        self.channels = np.array([g.channels for g in groups], dtype=np.int64)
        self.layout = {
            name: {
                dim: DimLayout(*(t.to(self.device) for t in (d.positions, d.groups, d.roots)))
                for dim, d in dims.items()
            }
            for name, dims in parameter_layout(
                groups, {n: p.shape for n, p in params.items()}
            ).items()
        }
        plans: dict[str, _ParameterPlan] = {}
        for name, dims in self.layout.items():
            depends = frozenset(int(g) for layout in dims.values() for g in layout.groups.tolist())
            plans[name] = _ParameterPlan(
                name, params[name].data, params[name].detach().clone(), dims, depends
            )
        for module_name, matrix in (compensation or {}).items():
            module = modules[module_name]
            weight_name = f"{module_name}.weight"
            in_dim = 0 if getattr(module, "transposed", False) else 1
            source = self.layout[weight_name][in_dim]
            bias_name = f"{module_name}.bias"
            plan = plans.get(bias_name) or _ParameterPlan(
                bias_name,
                params[bias_name].data,
                params[bias_name].detach().clone(),
                {},
                frozenset(),
            )
            plan.shift = matrix.to(device=self.device, dtype=plan.live.dtype)
            plan.shift_source = (weight_name, in_dim)
            plan.depends_on = plan.depends_on | frozenset(source.groups.tolist())
            plans[bias_name] = plan
        self._refits = []
        for module_name, refit in (refits or {}).items():
            weight_name, bias_name = f"{module_name}.weight", f"{module_name}.bias"
            if bias_name not in plans:
                plans[bias_name] = _ParameterPlan(
                    bias_name, params[bias_name].data, params[bias_name].detach().clone(), {},
                    frozenset(),
                )  # fmt: skip
            bias_plan = plans[bias_name]
            bias_plan.depends_on = bias_plan.depends_on | plans[weight_name].depends_on
            self._refits.append((refit, plans[weight_name], bias_plan))
        self._plans = list(plans.values())
        self._plan_by_name = plans
        self._owners = {
            (name, dim): layout.by_group
            for name, dims in self.layout.items()
            for dim, layout in dims.items()
        }
        self._applied = np.zeros(len(groups), dtype=np.int64)
        self._written: dict[tuple[str, int], torch.Tensor] = {}  # keep vectors now in the model
        self._norms = _masked_layer_norms(modules, self.layout)

    @property
    def applied_counts(self) -> np.ndarray:
        """``(m,)`` channels currently masked per group."""
        return self._applied.copy()

    def keep_vectors(self, counts: np.ndarray) -> list[torch.Tensor]:
        """Per group, a ``(n_i,)`` float 0/1 vector: 0 for the ``counts[i]`` masked channels."""
        keeps = []
        for order, count, channels in zip(self.orders, counts, self.channels, strict=True):
            keep = torch.ones(int(channels), device=self.device)
            keep[order[: int(count)]] = 0.0
            keeps.append(keep)
        return keeps

    def stacked_keep_vectors(self, counts: np.ndarray) -> list[torch.Tensor]:
        """Per group, a ``(K, n_i)`` float 0/1 matrix for ``counts`` ``(K, m)``: row ``k`` is
        :meth:`keep_vectors` of ``counts[k]`` (computed at once on :attr:`device`)."""
        counts = torch.as_tensor(np.asarray(counts, dtype=np.int64), device=self.device)
        return [
            (rank[None, :] >= counts[:, group, None]).float()
            for group, rank in enumerate(self.ranks)
        ]

    def _dim_keep(self, name: str, dim: int, size: int, keeps: list[torch.Tensor]) -> torch.Tensor:
        """``(size,)`` keep vector, or ``(K, size)`` for stacked ``(K, n_i)`` keeps."""
        owners = self._owners.get((name, dim), ())
        if keeps and keeps[0].dim() == 2:  # stacked: (K, n_i) per group
            vector = torch.ones(len(keeps[0]), size, device=self.device)
            for group, positions, roots in owners:
                vector[:, positions] = keeps[group][:, roots]
            return vector
        vector = torch.ones(size, device=self.device)
        for group, positions, roots in owners:
            vector[positions] = keeps[group][roots]
        return vector

    def dim_keep(self, name: str, dim: int, size: int, keeps: list[torch.Tensor]) -> torch.Tensor:
        """``(size,)`` 0/1 keep vector of dimension ``dim`` of parameter ``name`` for the per-group
        ``keeps`` of :meth:`keep_vectors` (all ones where no group owns the dimension); ``(K,
        size)`` for the stacked keeps of :meth:`stacked_keep_vectors`."""
        return self._dim_keep(name, dim, size, keeps)

    def is_masked(self, name: str, dim: int) -> bool:
        """Whether some group masks dimension ``dim`` of parameter ``name``."""
        return (name, dim) in self._owners

    def compensation(self, bias_name: str) -> tuple[torch.Tensor, str, int] | None:
        """``(M, weight name, input dim)`` of the consumer whose bias is ``bias_name``: its bias
        gains ``M @ removed`` for the 0/1 vector ``removed`` of that weight dimension; ``None``
        when the bias is not compensated."""
        plan = self._plan_by_name.get(bias_name)
        if plan is None or plan.shift is None:
            return None
        return (plan.shift, *plan.shift_source)

    def dependencies(self, name: str) -> frozenset[int]:
        """Groups whose counts change parameter ``name`` (masks and bias compensation)."""
        plan = self._plan_by_name.get(name)
        return plan.depends_on if plan is not None else frozenset()

    def dense_value(self, name: str, live: torch.Tensor) -> torch.Tensor:
        """The dense value of parameter ``name`` (its bit-exact copy; ``live`` itself, detached,
        for a parameter no mask ever touches)."""
        plan = self._plan_by_name.get(name)
        return plan.dense if plan is not None else live.detach()

    def masked_value(self, name: str, dense: torch.Tensor, keeps: list[torch.Tensor]):
        """Parameter ``name`` masked and compensated for ``keeps``, computed out of place
        (the model is not touched); ``dense`` is its dense value, used where no plan exists."""
        plan = self._plan_by_name.get(name)
        if plan is None:
            return dense
        return self._write_masked(
            plan, torch.empty_like(plan.dense), lambda n, d, size: self._dim_keep(n, d, size, keeps)
        )

    def _write_masked(self, plan: _ParameterPlan, out: torch.Tensor, dim_keep) -> torch.Tensor:
        """``out = (dense + M·removed)·Π_dims keep``: one parameter masked and compensated."""
        out.copy_(plan.dense)
        if plan.shift is not None:
            weight_name, in_dim = plan.shift_source
            removed = 1.0 - dim_keep(weight_name, in_dim, plan.shift.shape[1])
            if removed.any():
                out.add_(plan.shift @ removed.to(plan.shift.dtype))
        for dim in plan.dims:
            size = out.shape[dim]
            keep = dim_keep(plan.name, dim, size)
            if bool((keep == 0).any()):
                shape = [1] * out.dim()
                shape[dim] = size
                out.mul_(keep.view(shape).to(out.dtype))
        return out

    @torch.no_grad()
    def apply(self, counts: np.ndarray) -> None:
        """Mask ``counts[i]`` channels of each group, touching only parameters that change
        (in float32 even inside an evaluation's autocast)."""
        with torch.autocast(self.device.type, enabled=False):
            self._apply(counts)

    def _apply(self, counts: np.ndarray) -> None:
        counts = np.asarray(counts, dtype=np.int64)
        changed = set(np.flatnonzero(counts != self._applied).tolist())
        if not changed:
            return
        keeps = self.keep_vectors(counts)
        dim_keeps: dict[tuple[str, int], torch.Tensor] = {}
        self._applied = np.full_like(counts, -1)  # unknown until every write has finished

        def dim_keep(name: str, dim: int, size: int) -> torch.Tensor:
            key = (name, dim)
            if key not in dim_keeps:
                dim_keeps[key] = self._dim_keep(name, dim, size, keeps)
            return dim_keeps[key]

        for plan in self._plans:
            if not plan.depends_on & changed:
                continue
            if plan.shift is None and plan.live.dim() >= 2 and plan.dims:
                self._rewrite_changed_slices(plan, dim_keep)
                continue
            self._write_masked(plan, plan.live, dim_keep)
        for refit, weight, bias in self._refits:
            if weight.depends_on & changed:
                self._write_refit(refit, weight, bias, dim_keep)
        for (name, dim), keep in dim_keeps.items():
            self._written[name, dim] = keep
        for norm, name in self._norms:
            keep = dim_keep(name, 0, norm.normalized_shape[0])
            norm.channel_keep = None if bool(keep.all()) else keep
        self._applied = counts.copy()

    @staticmethod
    def _write_refit(refit, weight: _ParameterPlan, bias: _ParameterPlan, dim_keep) -> None:
        """Overwrite a consumer's weight and bias with its least-squares refit."""
        new_weight, new_bias = ChannelMasker._refit_value(refit, weight, dim_keep)
        weight.live.copy_(new_weight)
        bias.live.copy_(new_bias)

    @staticmethod
    def _refit_value(refit, weight: _ParameterPlan, dim_keep) -> tuple[torch.Tensor, ...]:
        """A consumer's least-squares refit weight (its shape) and bias for the kept inputs
        (removed inputs zero), times the keep vector of its outputs where they are masked."""
        shape = weight.live.shape  # (out, in) or (out, in, kh, kw)
        new_weight, new_bias = refit.refit(dim_keep(weight.name, 1, shape[1]))
        if 0 in weight.dims:
            keep_out = dim_keep(weight.name, 0, shape[0]).to(new_weight.dtype)
            new_weight = new_weight * keep_out[:, None]
            new_bias = new_bias * keep_out
        return new_weight.reshape(shape), new_bias

    def refits(self, module_name: str) -> bool:
        """Whether consumer ``module_name`` is refit by least squares (``lsq``)."""
        return any(weight.name == f"{module_name}.weight" for _, weight, _ in self._refits)

    def refit_value(self, module_name: str, keeps: list[torch.Tensor]):
        """``(weight, bias)`` of consumer ``module_name`` masked and refit by least squares
        for ``keeps``, out of place in the parameters' dtype (the model is not touched), or
        ``None`` where the module is not refit. Read-only: they may be the refit's cache."""
        for refit, weight, _ in self._refits:
            if weight.name == f"{module_name}.weight":

                def dim_keep(name: str, dim: int, size: int) -> torch.Tensor:
                    return self._dim_keep(name, dim, size, keeps)

                return self._refit_value(refit, weight, dim_keep)
        return None

    def _rewrite_changed_slices(self, plan: _ParameterPlan, dim_keep) -> None:
        """Rewrite only the slices of a weight whose keep value changed since the last apply:
        ``live[slice] = dense[slice] · Π_dims keep``. Every other entry keeps its product of
        unchanged keep values, so the result equals a full rewrite. When more than a quarter of
        a dimension changed, one full rewrite is cheaper than gathering slices."""
        live = plan.live
        keeps = {dim: dim_keep(plan.name, dim, live.shape[dim]).to(live.dtype) for dim in plan.dims}
        moved = {}
        for dim, keep in keeps.items():
            before = self._written.get((plan.name, dim))  # None: dense since the last restore
            before = torch.ones_like(keep) if before is None else before.to(keep.dtype)
            moved[dim] = torch.nonzero(keep != before).flatten()
        shapes = {}
        for dim in keeps:
            shape = [1] * live.dim()
            shape[dim] = -1
            shapes[dim] = shape
        if any(len(index) * 4 > live.shape[dim] for dim, index in moved.items()):
            live.copy_(plan.dense)
            for dim, keep in keeps.items():
                live.mul_(keep.view(shapes[dim]))
            return
        for dim, index in moved.items():
            if index.numel() == 0:
                continue
            block = plan.dense.index_select(dim, index)
            for other, factor in keeps.items():
                factor = factor.index_select(0, index) if other == dim else factor
                block.mul_(factor.view(shapes[other]))
            live.index_copy_(dim, index, block)

    @torch.no_grad()
    def restore(self) -> None:
        """Write the dense values back bit for bit (and let LayerNorms see every channel)."""
        for plan in self._plans:
            plan.live.copy_(plan.dense)
        for norm, _ in self._norms:
            norm.channel_keep = None
        self._applied = np.zeros(len(self.groups), dtype=np.int64)
        self._written = {}


def _masked_layer_norms(modules: dict[str, nn.Module], layout) -> list[tuple[KeptLayerNorm, str]]:
    """``(module, masked parameter)`` of every LayerNorm some group masks.

    Raises:
        UnsupportedLayerError: for a masked LayerNorm that is not a :class:`KeptLayerNorm`
            (its statistics would still cover the masked channels).
    """
    norms = []
    for name, module in modules.items():
        if not isinstance(module, nn.LayerNorm):
            continue
        masked = [f"{name}.{key}" for key in ("weight", "bias") if f"{name}.{key}" in layout]
        if not masked:
            continue
        if not isinstance(module, KeptLayerNorm):
            raise UnsupportedLayerError(
                f"LayerNorm {name!r} ({type(module).__name__} over "
                f"{tuple(module.normalized_shape)}) has masked channels, but only a plain "
                "nn.LayerNorm over the last dimension can leave them out of its statistics"
            )
        norms.append((module, masked[0]))
    return norms
