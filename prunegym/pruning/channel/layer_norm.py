"""LayerNorm whose statistics cover only the kept channels.

A LayerNorm normalises each row over its ``C`` channels. Masking channel ``j`` zeroes its input
(the producer is masked) and its scale and shift, but the mean and variance would still be
taken over all ``C`` channels, while the physically smaller model takes them over the kept
ones. :class:`KeptLayerNorm` closes that gap: while :attr:`KeptLayerNorm.channel_keep` holds a
0/1 vector (set by the masker), mean and variance run over the kept channels only, so the masked
model computes what the exported one does. With ``channel_keep=None`` it is ``nn.LayerNorm``.
"""

from __future__ import annotations

import torch
from torch import nn


class KeptLayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` over the last dimension, normalised over the kept channels only.

    Attributes:
        channel_keep: ``None`` (plain LayerNorm), or a ``(C,)`` 0/1 float vector on the
            module's device; ``(K, C)`` with inputs ``(K·N, ..., C)`` evaluates K candidates,
            block ``k`` of the rows with row ``k`` of the keeps.
    """

    channel_keep: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = self.channel_keep
        if keep is None:
            return super().forward(x)
        rows = x.reshape(len(keep) if keep.dim() == 2 else 1, -1, x.shape[-1])
        keep = keep.reshape(len(rows), 1, -1).to(x.dtype)
        kept = keep.sum(-1, keepdim=True)
        mean = (rows * keep).sum(-1, keepdim=True) / kept
        centred = (rows - mean) * keep
        variance = centred.pow(2).sum(-1, keepdim=True) / kept
        out = (centred * torch.rsqrt(variance + self.eps)).reshape(x.shape)
        if self.weight is not None:
            out = out * self.weight
        if self.bias is not None:
            out = out + self.bias
        return out


def explicit_layer_norms(model: nn.Module) -> int:
    """Make every ``nn.LayerNorm`` over one dimension in ``model`` a :class:`KeptLayerNorm`, in
    place (the same objects and parameters; only their class changes); returns how many."""
    targets = [
        module
        for module in model.modules()
        if type(module) is nn.LayerNorm and len(module.normalized_shape) == 1
    ]
    for module in targets:
        module.__class__ = KeptLayerNorm
    return len(targets)
