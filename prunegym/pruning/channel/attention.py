"""Attention heads as pruning groups.

``nn.MultiheadAttention`` ties its inner width to its embedding width (``in_proj_weight`` is
``(3E, E)``) and computes its output projection inside one fused function. So neither a head nor
a residual channel can be removed from it, and no hook sees what a head outputs.
:func:`explicit_attention` swaps every ``nn.MultiheadAttention`` of a model for
:class:`HeadAttention`, which computes the same function with four ``nn.Linear`` layers whose
inner width is ``num_heads · head_dim`` and need not equal the embedding width:

- the residual (embedding) channels are the inputs of ``q``, ``k``, ``v`` and the outputs of
  ``out``, so Torch-Pruning's residual-stream group reaches them as it reaches any Linear;
- head ``h`` owns rows ``[h·d, (h+1)·d)`` of ``q``, ``k``, ``v`` and the same columns of
  ``out`` (``head_slices`` in :mod:`prunegym.pruning.channel.groups`); ``out`` is their
  consumer, for statistics and compensation.

Masking head ``h`` zeroes its query and key rows (uniform attention) and its value rows (zero
output), so the masked model computes what the model without the head computes, and
:func:`remove_heads` cuts the head out, updating ``num_heads``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from prunegym.pruning.channel.errors import UnsupportedLayerError


class HeadAttention(nn.Module):
    """Multi-head attention with separate projections (the function of ``nn.MultiheadAttention``
    with ``add_bias_kv=False``, ``add_zero_attn=False``).

    Args:
        embed_dim: Width ``E`` of the query/key/value inputs and of the output.
        num_heads: Heads ``H``.
        head_dim: Width ``d`` of one head; the inner width is ``H·d``.
        bias: Whether the projections have biases.
        dropout: Attention dropout probability (training only).
        batch_first: Inputs ``(B, L, E)`` if true, else ``(L, B, E)``.

    A per-head ``attn_mask`` ``(B·H, L, S)`` is for the model's head count: after
    :func:`remove_heads`, pass one for the kept heads.
    """

    # Read by torch's TransformerEncoder(Layer) before its fused fast path, which needs
    # nn.MultiheadAttention's packed projection: these values make it take the plain path.
    in_proj_weight = None
    in_proj_bias = None
    _qkv_same_embed_dim = False

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        head_dim: int,
        bias: bool = True,
        dropout: float = 0.0,
        batch_first: bool = False,
    ) -> None:
        super().__init__()
        inner = num_heads * head_dim
        self.q = nn.Linear(embed_dim, inner, bias=bias)
        self.k = nn.Linear(embed_dim, inner, bias=bias)
        self.v = nn.Linear(embed_dim, inner, bias=bias)
        self.out = nn.Linear(inner, embed_dim, bias=bias)
        self.num_heads, self.head_dim = num_heads, head_dim
        self.dropout, self.batch_first = dropout, batch_first

    @classmethod
    def from_multihead(cls, attention: nn.MultiheadAttention) -> HeadAttention:
        """The same function as ``attention`` (weights copied, on its device and dtype).

        Raises:
            UnsupportedLayerError: for ``add_bias_kv``, ``add_zero_attn`` or separate
                key/value widths.
        """
        if (
            attention.bias_k is not None
            or attention.add_zero_attn
            or not attention._qkv_same_embed_dim
        ):
            raise UnsupportedLayerError(
                "nn.MultiheadAttention with add_bias_kv, add_zero_attn or kdim/vdim other than "
                "embed_dim cannot be pruned by heads"
            )
        weight, bias = attention.in_proj_weight, attention.in_proj_bias
        embed = attention.embed_dim
        new = cls(
            embed, attention.num_heads, attention.head_dim, bias is not None, attention.dropout,
            attention.batch_first,
        )  # fmt: skip
        new.to(device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            for position, layer in enumerate((new.q, new.k, new.v)):
                layer.weight.copy_(weight[position * embed : (position + 1) * embed])
                if bias is not None:
                    layer.bias.copy_(bias[position * embed : (position + 1) * embed])
            new.out.weight.copy_(attention.out_proj.weight)
            if bias is not None:
                new.out.bias.copy_(attention.out_proj.bias)
        return new.train(attention.training)

    def _heads(self, x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
        """``(B, L, E)`` → ``(B, H, L, d)``."""
        return layer(x).unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Arguments and results as ``nn.MultiheadAttention.forward`` (boolean masks: ``True``
        means not allowed to attend; float masks are added to the scores)."""
        if not self.batch_first:
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))
        q, k, v = self._heads(query, self.q), self._heads(key, self.k), self._heads(value, self.v)
        mask = _additive_mask(attn_mask, key_padding_mask, q, k.shape[2], is_causal)
        dropout = self.dropout if self.training else 0.0
        if need_weights:
            scores = q @ k.transpose(-2, -1) / self.head_dim**0.5
            weights = torch.softmax(scores if mask is None else scores + mask, dim=-1)
            heads = F.dropout(weights, dropout, self.training) @ v
        else:
            weights = None
            heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        output = self.out(heads.transpose(1, 2).flatten(2))
        if not self.batch_first:
            output = output.transpose(0, 1)
        if weights is not None and average_attn_weights:
            weights = weights.mean(dim=1)
        return output, weights


def _additive_mask(attn_mask, key_padding_mask, q, keys: int, is_causal: bool):
    """One float mask broadcastable to ``(B, H, L, S)`` (``-inf`` where not allowed), or
    ``None``."""
    mask = None
    if is_causal and attn_mask is None:
        attn_mask = torch.ones(q.shape[2], keys, dtype=torch.bool, device=q.device).triu(1)
    for part, shape in ((attn_mask, None), (key_padding_mask, (q.shape[0], 1, 1, keys))):
        if part is None:
            continue
        if part.dtype == torch.bool:
            part = torch.zeros(part.shape, dtype=q.dtype, device=q.device).masked_fill(
                part, float("-inf")
            )
        part = part.to(q.dtype)
        if shape is not None:
            part = part.reshape(shape)
        elif part.dim() == 3:  # (B·H, L, S)
            part = part.reshape(q.shape[0], q.shape[1], *part.shape[1:])
        mask = part if mask is None else mask + part
    return mask


def explicit_attention(model: nn.Module) -> int:
    """Replace every ``nn.MultiheadAttention`` in ``model`` (in place) by the equal
    :class:`HeadAttention`; returns how many were replaced."""
    targets = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.MultiheadAttention)
    ]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, HeadAttention.from_multihead(module))
    return len(targets)


def sync_widths(model: nn.Module) -> None:
    """After channels or heads were cut out, update the width attributes that torchvision's
    vision transformer reads in its forward (``hidden_dim`` from the patch embedding) and
    reports (``num_heads`` of an encoder block)."""
    for module in model.modules():
        embedding = getattr(module, "conv_proj", None)
        if isinstance(embedding, nn.Conv2d) and isinstance(
            getattr(module, "hidden_dim", None), int
        ):
            module.hidden_dim = embedding.out_channels
        attention = getattr(module, "self_attention", None)
        if isinstance(attention, HeadAttention) and hasattr(module, "num_heads"):
            module.num_heads = attention.num_heads


@torch.no_grad()
def remove_heads(attention: HeadAttention, heads: list[int]) -> None:
    """Cut ``heads`` out of ``attention`` in place (rows of ``q``/``k``/``v``, columns of
    ``out``) and update ``num_heads``."""
    removed = set(heads)
    kept = [h for h in range(attention.num_heads) if h not in removed]
    rows = torch.tensor(
        [h * attention.head_dim + j for h in kept for j in range(attention.head_dim)],
        dtype=torch.long,
        device=attention.q.weight.device,
    )
    for layer in (attention.q, attention.k, attention.v):
        layer.weight = nn.Parameter(layer.weight.index_select(0, rows))
        if layer.bias is not None:
            layer.bias = nn.Parameter(layer.bias.index_select(0, rows))
        layer.out_features = len(rows)
    attention.out.weight = nn.Parameter(attention.out.weight.index_select(1, rows))
    attention.out.in_features = len(rows)
    attention.num_heads = len(kept)
