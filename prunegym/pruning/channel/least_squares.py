"""Least-squares reconstruction of a consumer after channels are removed (``compensation="lsq"``).

Mean compensation moves only the consumer's bias. When inputs ``R`` of a Linear consumer
``a = W z + b`` are removed, the kept inputs ``K`` usually still predict part of what the removed
ones contributed. The ridge-regularised least-squares refit of the kept weights and the bias,

    min over Δ, δ   E‖W_R z_R − Δ z_K − δ‖² + λ‖Δ‖²,

on the calibration inputs has the closed form, with ``μ`` and ``Σ`` the mean and (centred)
covariance of ``z`` from calibration:

    Δ = W_R Σ_RK (Σ_KK + λI)⁻¹,    W'_K = W_K + Δ,    b' = b + W_R μ_R − Δ μ_K.

``Δ = 0`` is mean compensation, so the refit never leaves a larger calibration reconstruction
error than ``mean`` (the ridge solution's error plus ``λ‖Δ‖²`` is at most the error at
``Δ = 0``). ``λ`` is ``ridge`` times the mean input variance. Inputs that never vary on the
calibration data (units that never fire) are left out of the regression: their weights stay.
Convolutions are refit only in their bias (mean compensation): their patch covariance is
``(k²·C_in)²`` and is not built yet.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

CACHED_REFITS = 64  # per consumer: refits of recently seen removed sets


class LeastSquaresRefit:
    """The ridge refit of one Linear consumer (see the module docstring).

    Args:
        weight: ``(out, in)`` dense weight.
        bias: ``(out,)`` dense bias.
        mean: ``(in,)`` calibration mean of the inputs.
        covariance: ``(in, in)`` centred calibration covariance of the inputs (float64).
        ridge: ``λ`` relative to the mean input variance.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        mean: torch.Tensor,
        covariance: torch.Tensor,
        ridge: float,
    ) -> None:
        self.weight = weight.detach().double()
        self.bias = bias.detach().double()
        self.mean = mean.to(self.weight).double()
        self.covariance = covariance.to(self.weight.device, torch.float64)
        variance = self.covariance.diagonal()
        self.alive = variance > 0
        scale = float(variance[self.alive].mean()) if bool(self.alive.any()) else 1.0
        self.ridge = ridge * scale
        self._cache: OrderedDict[bytes, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def refit(self, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weight (out, in), bias (out,))`` float64 for the 0/1 input keep vector ``keep``
        ``(in,)``: removed columns zero, kept columns and the bias refit."""
        removed = keep == 0
        key = removed.cpu().numpy().tobytes()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        weight, bias = self.weight.clone(), self.bias.clone()
        if bool(removed.any()):
            lost = weight[:, removed]  # (out, |R|)
            bias += lost @ self.mean[removed]
            weight[:, removed] = 0.0
            kept = ~removed & self.alive
            if bool(kept.any()):
                gram = self.covariance[kept][:, kept]
                gram.diagonal().add_(self.ridge)
                cross = self.covariance[kept][:, removed] @ lost.T  # (|K|, out)
                delta = torch.linalg.solve(gram, cross).T  # (out, |K|)
                weight[:, kept] += delta
                bias -= delta @ self.mean[kept]
        self._cache[key] = (weight, bias)
        if len(self._cache) > CACHED_REFITS:
            self._cache.popitem(last=False)
        return weight, bias

    def removal_scores(self) -> torch.Tensor:
        """``(in,)`` error left by removing input ``j`` alone and refitting the others:
        ``‖W_{:,j}‖² / [(Σ + λI)⁻¹]_jj`` (OBS), 0 for inputs that never vary."""
        alive = self.alive
        scores = torch.zeros(len(alive), dtype=torch.float64, device=self.weight.device)
        if bool(alive.any()):
            gram = self.covariance[alive][:, alive]
            gram.diagonal().add_(self.ridge)
            precision = torch.linalg.inv(gram).diagonal()
            scores[alive] = self.weight[:, alive].pow(2).sum(0) / precision
        return scores
