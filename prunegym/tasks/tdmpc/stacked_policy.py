"""The TD-MPC policy ``π(h(frames))`` for K parameter sets at once, bit-identical to K plain calls.

Closed-loop returns amplify rounding differences, so a batched evaluation has to compute exactly
what the sequential one does. ``torch.func.vmap`` does not (its batched kernels round
differently, about 1e-5 in the actions). Here, each convolution runs as one grouped convolution
over the K sets when that reproduces the plain convolution bit for bit on this machine (checked
on every call, on the real shapes); every other layer runs per set, on the same shapes and
kernels as :meth:`WorldModel.pi` of :meth:`WorldModel.encode`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from prunegym.tasks.tdmpc.world_model import WorldModel


class StackedPolicy:
    """Actions of K parameter sets of ``model`` for their own frames.

    Args:
        model: The world model (its modules give the layer types and hyper-parameters; its own
            parameters are not used).
        parameters: Every parameter name of ``model`` mapped to a ``(K, *shape)`` stack.
    """

    def __init__(self, model: WorldModel, parameters: dict[str, torch.Tensor]) -> None:
        self.model = model
        self.count = len(next(iter(parameters.values())))
        self.sets = [
            {name: value[k] for name, value in parameters.items()} for k in range(self.count)
        ]
        self.names = {id(module): name for name, module in model.named_modules()}
        self._grouped: dict[int, bool] = {}

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames (K·E, frames, size, size)`` uint8, set-major -> actions ``(K·E, 1)``."""
        inputs = WorldModel.preprocess(frames).chunk(self.count)
        values = [x.contiguous() for x in inputs]
        for module in self.model.encoder:
            values = self._layer(module, values)
        for module in self.model.pi_head:
            values = self._layer(module, values)
        return torch.cat([torch.tanh(v) for v in values])

    def _layer(self, module: nn.Module, values: list[torch.Tensor]) -> list[torch.Tensor]:
        name = self.names[id(module)]
        if isinstance(module, nn.Conv2d):
            if self._grouped_is_exact(module, name, values):
                return self._grouped_conv(module, name, values)
            return [self._conv(module, p, name, v) for p, v in zip(self.sets, values, strict=True)]
        if isinstance(module, nn.Linear):
            return [
                functional.linear(v, p[f"{name}.weight"], p.get(f"{name}.bias"))
                for p, v in zip(self.sets, values, strict=True)
            ]
        if isinstance(module, nn.ReLU | nn.ELU | nn.Tanh | nn.Flatten):
            return [module(v) for v in values]  # parameter-free, the same shapes as alone
        raise TypeError(f"StackedPolicy does not support {type(module).__name__} ({name})")

    @staticmethod
    def _conv(module: nn.Conv2d, params: dict, name: str, value: torch.Tensor) -> torch.Tensor:
        weight, bias = params[f"{name}.weight"], params.get(f"{name}.bias")
        return functional.conv2d(
            value, weight, bias, module.stride, module.padding, module.dilation, module.groups
        )

    def _grouped_conv(self, module: nn.Conv2d, name: str, values: list[torch.Tensor]):
        weight = torch.cat([p[f"{name}.weight"] for p in self.sets])
        bias = None
        if module.bias is not None:
            bias = torch.cat([p[f"{name}.bias"] for p in self.sets])
        stacked = torch.cat(values, dim=1)  # (E, K·C_in, H, W)
        out = functional.conv2d(
            stacked, weight, bias, module.stride, module.padding, module.dilation,
            module.groups * self.count,
        )  # fmt: skip
        return [part.contiguous() for part in out.chunk(self.count, dim=1)]

    def _grouped_is_exact(self, module: nn.Conv2d, name: str, values: list[torch.Tensor]):
        """Whether the grouped convolution equals the per-set ones bit for bit on these
        shapes (one random probe per layer and set count)."""
        if module.groups != 1 or module.padding_mode != "zeros" or self.count == 1:
            return False
        key = id(module)
        if key not in self._grouped:
            generator = torch.Generator().manual_seed(0)
            probe = [torch.randn(v.shape, generator=generator) for v in values]
            grouped = self._grouped_conv(module, name, probe)
            alone = [self._conv(module, p, name, v) for p, v in zip(self.sets, probe, strict=True)]
            self._grouped[key] = all(torch.equal(a, b) for a, b in zip(grouped, alone, strict=True))
        return self._grouped[key]
