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
        dtype = torch.promote_types(x.dtype, torch.float32)  # as F.layer_norm under autocast
        rows = x.to(dtype).reshape(len(keep) if keep.dim() == 2 else 1, -1, x.shape[-1])
        keep = keep.reshape(len(rows), 1, -1).to(dtype)
        kept = keep.sum(-1, keepdim=True).clamp_min(1.0)  # all masked: the output is 0
        mean = (rows * keep).sum(-1, keepdim=True) / kept
        centred = (rows - mean) * keep
        variance = centred.pow(2).sum(-1, keepdim=True) / kept
        out = (centred * torch.rsqrt(variance + self.eps)).reshape(x.shape)
        if self.weight is not None:
            out = out * self.weight
        if self.bias is not None:
            out = out + self.bias
        return out


class KeptLayerNorm2d(KeptLayerNorm):
    """A :class:`KeptLayerNorm` over the channels of ``(N, C, H, W)`` inputs: the function of
    torchvision's (and timm's) ``LayerNorm2d``, channels moved last and back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def explicit_layer_norms(model: nn.Module) -> int:
    """Make every ``nn.LayerNorm`` over one dimension in ``model`` a :class:`KeptLayerNorm`, and
    every ``LayerNorm2d`` (an ``nn.LayerNorm`` subclass of that name, which normalises the
    channels of ``(N, C, H, W)``) a :class:`KeptLayerNorm2d`, in place (the same objects and
    parameters; only their class changes); returns how many."""
    count = 0
    for module in model.modules():
        if not isinstance(module, nn.LayerNorm) or len(module.normalized_shape) != 1:
            continue
        if type(module) is nn.LayerNorm:
            module.__class__ = KeptLayerNorm
        elif type(module).__name__ == "LayerNorm2d":
            module.__class__ = KeptLayerNorm2d
        else:
            continue
        count += 1
    return count
