"""The TD-MPC policy ``π(h(frames))`` for K parameter sets at once, bit-identical to K plain calls.

Closed-loop returns amplify rounding differences, so a batched evaluation has to compute exactly
what the sequential one does. ``torch.func.vmap`` does not (its batched kernels round
differently, about 1e-5 in the actions). Here every layer runs once for all K sets, as a
grouped convolution, a batched matmul (``baddbmm``) or one elementwise call on the stacked
activations, wherever that reproduces the per-set computation bit for bit on this machine;
that is checked once per layer on a random probe of the real shapes. Layers that fail the check
(on the development machine: the first convolution and the 1-unit output layer) run per set,
on the same shapes and kernels as :meth:`WorldModel.pi` of :meth:`WorldModel.encode`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from prunegym.tasks.tdmpc.world_model import WorldModel

ELEMENTWISE = nn.ReLU | nn.ELU | nn.Tanh


class StackedPolicy:
    """Actions of K parameter sets of ``model``, each for its own frames.

    Args:
        model: The world model (its modules give the layer types and hyper-parameters; its own
            parameters are not used).
        parameters: Every parameter name of ``model`` mapped to a ``(K, *shape)`` stack.
    """

    def __init__(self, model: WorldModel, parameters: dict[str, torch.Tensor]) -> None:
        self.model = model
        self.parameters = parameters
        self.count = len(next(iter(parameters.values())))
        self.names = {id(module): name for name, module in model.named_modules()}
        self._exact: dict[tuple[int, tuple[int, ...]], bool] = {}
        self._tanh = nn.Tanh()  # π's squashing, as WorldModel.pi applies it

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames (K·E, frames, size, size)`` uint8, set-major -> actions ``(K·E, 1)``."""
        values = WorldModel.preprocess(frames)
        values = values.reshape(self.count, -1, *values.shape[1:])  # (K, E, ...)
        for module in (*self.model.encoder, *self.model.pi_head, self._tanh):
            values = self._layer(module, values)
        return values.reshape(-1, values.shape[-1])

    def _layer(self, module: nn.Module, values: torch.Tensor) -> torch.Tensor:
        if isinstance(module, nn.Flatten):
            return values.flatten(2)  # per set: flatten(1) of (E, C, H, W)
        if not isinstance(module, nn.Conv2d | nn.Linear | ELEMENTWISE):
            raise TypeError(f"StackedPolicy does not support {type(module).__name__}")
        key = (id(module), tuple(values.shape))
        if key not in self._exact:
            generator = torch.Generator().manual_seed(0)
            probe = torch.randn(values.shape, generator=generator, device="cpu").to(values.device)
            together, apart = self._together(module, probe), self._apart(module, probe)
            self._exact[key] = torch.equal(together, apart)
        if self._exact[key]:
            return self._together(module, values)
        return self._apart(module, values)

    def _params(self, module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
        name = self.names.get(id(module))
        weight = self.parameters[f"{name}.weight"]
        return weight, self.parameters.get(f"{name}.bias")

    def _apart(self, module: nn.Module, values: torch.Tensor) -> torch.Tensor:
        """Set by set, exactly as a plain call of the module with that set's parameters."""
        if isinstance(module, ELEMENTWISE):
            return torch.stack([module(v) for v in values])
        weight, bias = self._params(module)
        outputs = []
        for k, value in enumerate(values):
            b = None if bias is None else bias[k]
            if isinstance(module, nn.Linear):
                outputs.append(functional.linear(value, weight[k], b))
            else:
                outputs.append(functional.conv2d(
                    value, weight[k], b, module.stride, module.padding, module.dilation,
                    module.groups,
                ))  # fmt: skip
        return torch.stack(outputs)

    def _together(self, module: nn.Module, values: torch.Tensor) -> torch.Tensor:
        """All sets in one call: elementwise, ``baddbmm`` or a grouped convolution."""
        if isinstance(module, ELEMENTWISE):
            return module(values)
        weight, bias = self._params(module)
        count = self.count
        if isinstance(module, nn.Linear):
            if bias is None:
                return torch.bmm(values, weight.transpose(1, 2))
            return torch.baddbmm(bias[:, None, :], values, weight.transpose(1, 2))
        if module.groups != 1 or module.padding_mode != "zeros":
            return self._apart(module, values)
        episodes = values.shape[1]
        stacked = values.transpose(0, 1).reshape(episodes, -1, *values.shape[-2:])
        out = functional.conv2d(
            stacked, weight.reshape(-1, *weight.shape[2:]),
            None if bias is None else bias.reshape(-1), module.stride, module.padding,
            module.dilation, count,
        )  # fmt: skip
        out = out.reshape(episodes, count, -1, *out.shape[-2:]).transpose(0, 1)
        return out.contiguous()
