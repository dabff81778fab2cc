"""A runtime check for device-agnostic code on a machine without a GPU.

Inside :class:`FactoryWatch`, every call of a tensor factory (``torch.ones``, ``torch.zeros``,
``torch.tensor``, ``torch.arange``, ``torch.from_numpy``, ...) made directly by prunegym's own
code without an explicit ``device=`` is recorded with its file and line. Such a call makes its
tensor on the default device (the CPU) whatever device the model is on, which fails, or
silently copies, on a GPU. ``from_numpy`` is always on the CPU, so it is recorded too.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

import prunegym

FACTORIES = {
    torch.ones, torch.zeros, torch.empty, torch.full, torch.arange, torch.tensor,
    torch.as_tensor, torch.rand, torch.randn, torch.randint, torch.randperm, torch.eye,
    torch.linspace, torch.from_numpy,
}  # fmt: skip
PACKAGE = str(Path(prunegym.__file__).parent)


class FactoryWatch(TorchFunctionMode):
    """Records ``file:line`` of prunegym code that makes a tensor without naming its device."""

    def __init__(self) -> None:
        super().__init__()
        self.sites: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and (func is torch.from_numpy or "device" not in kwargs):
            caller = traceback.extract_stack(limit=2)[0]  # third-party code is its own business
            if caller.filename.startswith(PACKAGE):
                self.sites.add(f"{Path(caller.filename).relative_to(PACKAGE)}:{caller.lineno}")
        return func(*args, **kwargs)
