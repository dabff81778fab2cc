"""Least-squares reconstruction of a consumer after channels are removed (``compensation="lsq"``).

Mean compensation moves only the consumer's bias. When inputs ``R`` of a Linear consumer
``a = W z + b`` are removed, the kept inputs ``K`` usually still predict part of what the removed
ones contributed. The ridge-regularised least-squares refit of the kept weights and the bias,

    min over Δ, δ   E‖W_R z_R − Δ z_K − δ‖² + λ‖Δ‖²,

on the calibration inputs has the closed form, with ``μ`` and ``Σ`` the mean and (centred)
covariance of ``z`` from calibration:

    Δ = W_R Σ_RK (Σ_KK + λI)⁻¹,    W'_K = W_K + Δ,    b' = b + W_R μ_R − Δ μ_K.

With ``P = (Σ + λI)⁻¹`` the same ``Δ`` is ``−W_R (P_RR)⁻¹ P_RK`` (block inversion, the OBS
form), a solve over the removed inputs instead of the kept ones: each refit takes whichever of
the two systems is smaller, and ``P`` is inverted once per consumer.

``Δ = 0`` is mean compensation, so the refit never leaves a larger calibration reconstruction
error than ``mean`` (the ridge solution's error plus ``λ‖Δ‖²`` is at most the error at
``Δ = 0``). ``λ`` is ``ridge`` times the mean input variance. Inputs that never vary on the
calibration data (units that never fire) are left out of the regression: their weights stay.

A convolution is the same regression over its input patches: ``z`` is a patch of ``k²·C_in``
entries (channel-major, as ``weight.reshape(out, -1)``), every output position a sample, and
removing channel ``j`` removes its ``k²`` entries. That is exact, and is done where
``k²·C_in ≤ 2048`` (:func:`~prunegym.pruning.channel.statistics.patches_fit`); larger,
grouped or transposed convolutions get mean compensation.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

CACHED_REFITS = 64  # per consumer: refits of recently seen removed sets


class LeastSquaresRefit:
    """The ridge refit of one Linear consumer (see the module docstring).

    Args:
        weight: ``(out, cols)`` dense weight (a convolution's reshaped to ``(out, in·k²)``).
        bias: ``(out,)`` dense bias.
        mean: ``(cols,)`` calibration mean of the inputs (patch entries).
        covariance: ``(cols, cols)`` centred calibration covariance of the inputs (float64).
        ridge: ``λ`` relative to the mean input variance.
        columns_per_channel: ``k²`` for a convolution, 1 for a Linear.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        mean: torch.Tensor,
        covariance: torch.Tensor,
        ridge: float,
        columns_per_channel: int = 1,
    ) -> None:
        self.columns_per_channel = columns_per_channel
        self.dense = weight.detach().clone()  # never the live parameter; refit's dtype
        self.bias = bias.detach().to(torch.float64, copy=True)
        self.mean = mean.to(self.dense.device, torch.float64)
        self.covariance = covariance.to(self.dense.device, torch.float64)
        variance = self.covariance.diagonal()
        self.alive = variance > 0
        scale = float(variance[self.alive].mean()) if bool(self.alive.any()) else 1.0
        self.ridge = ridge * scale
        self._inverse: tuple[torch.Tensor, torch.Tensor] | None = None
        self._cache: OrderedDict[bytes, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def refit(self, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weight (out, cols), bias (out,))`` in the weight's dtype for the 0/1 input-channel
        keep vector ``keep`` ``(in,)``: removed channels' columns zero, kept columns and the bias
        refit (solved in float64, rounded once)."""
        removed = keep.repeat_interleave(self.columns_per_channel) == 0
        key = removed.cpu().numpy().tobytes()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        weight, bias = self.dense.clone(), self.bias.clone()
        gone = removed.nonzero().flatten()
        if len(gone):  # index tensors, not boolean masks: a step's refit is on its hot path
            bias += self._columns(gone) @ self.mean[gone]
            weight.index_fill_(1, gone, 0.0)
            kept = (~removed & self.alive).nonzero().flatten()
            varying = (removed & self.alive).nonzero().flatten()  # R: the rest have Σ_R· = 0
            if len(kept) and len(varying):
                delta = self._delta(kept, varying)  # (out, |K|)
                weight.index_copy_(1, kept, (self._columns(kept) + delta).to(weight))
                bias -= delta @ self.mean[kept]
        bias = bias.to(weight.dtype)
        self._cache[key] = (weight, bias)
        if len(self._cache) > CACHED_REFITS:
            self._cache.popitem(last=False)
        return weight, bias

    def _delta(self, kept: torch.Tensor, varying: torch.Tensor) -> torch.Tensor:
        """``Δ`` ``(out, |K|)`` for kept columns ``K`` and removed varying columns ``R``, by a
        Cholesky solve over the smaller of the two sets."""
        lost = self._columns(varying)  # (out, |R|)
        if len(varying) < len(kept):  # Δ = −W_R (P_RR)⁻¹ P_RK
            precision, position = self._precision()
            rows = precision.index_select(0, position[varying])  # (|R|, |V|)
            factor = torch.linalg.cholesky(rows.index_select(1, position[varying]))
            return -torch.cholesky_solve(lost.T, factor).T @ rows.index_select(1, position[kept])
        rows = self.covariance.index_select(0, kept)  # (|K|, cols)
        factor = torch.linalg.cholesky(self._ridged(rows.index_select(1, kept)))
        # (Σ_KK + λI)⁻¹ Σ_KR first: |R| right-hand sides rather than one per output.
        return lost @ torch.cholesky_solve(rows.index_select(1, varying), factor).T

    def _columns(self, index: torch.Tensor) -> torch.Tensor:
        """``(out, len(index))`` float64 dense weight columns."""
        return self.dense.index_select(1, index).double()

    def _ridged(self, gram: torch.Tensor) -> torch.Tensor:
        """``gram + λI`` in place: symmetric positive definite, as ``λ > 0``."""
        gram.diagonal().add_(self.ridge)
        return gram

    def _precision(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``P = (Σ_VV + λI)⁻¹`` ``(|V|, |V|)`` over the varying columns ``V`` (inverted once),
        and each column's position in ``V`` ``(cols,)`` (−1 where it never varies)."""
        if self._inverse is None:
            index = self.alive.nonzero().flatten()
            gram = self._ridged(self.covariance.index_select(0, index).index_select(1, index))
            position = torch.cumsum(self.alive.long(), 0) - 1
            position[~self.alive] = -1
            self._inverse = (torch.cholesky_inverse(torch.linalg.cholesky(gram)), position)
        return self._inverse

    def removal_scores(self) -> torch.Tensor:
        """``(in,)`` error left by removing input channel ``j`` alone and refitting the others:
        ``tr(W_B (P_BB)⁻¹ W_Bᵀ)`` for its columns ``B`` and ``P = (Σ + λI)⁻¹`` over the inputs
        that vary (OBS; ``‖W_{:,j}‖² / P_jj`` for a Linear); columns that never vary count 0."""
        precision = torch.zeros_like(self.covariance)
        if bool(self.alive.any()):
            index = self.alive.nonzero().flatten()
            precision[index[:, None], index[None, :]] = self._precision()[0]
        size = self.columns_per_channel
        channels = len(self.alive) // size
        blocks = precision.reshape(channels, size, channels, size)
        blocks = blocks[torch.arange(channels), :, torch.arange(channels), :]  # (in, k², k²)
        weight = self.dense.double().reshape(len(self.dense), channels, size)
        return torch.einsum("ocp,cpq,ocq->c", weight, torch.linalg.pinv(blocks), weight)
