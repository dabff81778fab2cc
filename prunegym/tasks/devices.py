"""Devices and evaluation precision: what a user names, checked once, with one clear line.

- :func:`resolve_device` turns ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"auto"`` (CUDA when
  present) or a ``torch.device`` into a ``torch.device`` that exists on this machine.
- :func:`device_name` says which hardware that is (the GPU's name, or the CPU's), for result
  files.
- :func:`move_to` puts every tensor and module an object holds on a device (how
  :meth:`prunegym.Task.to` moves a task's data).
- :func:`precision_context` runs evaluations in ``fp32`` (default), ``tf32`` (CUDA matmuls and
  convolutions with TensorFloat-32) or ``bf16`` (autocast to bfloat16).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import platform
from collections.abc import Iterator

import torch
from torch import nn

DEVICE_NAMES = "cpu, cuda, cuda:N or auto"
PRECISIONS = ("fp32", "tf32", "bf16")


def available_devices() -> list[str]:
    """The devices this machine has: ``cpu`` and ``cuda:0`` … ``cuda:{n-1}``."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ["cpu", *(f"cuda:{index}" for index in range(count))]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The ``torch.device`` named by ``device`` (``None`` is ``cpu``; ``auto`` is ``cuda`` when
    CUDA is available, else ``cpu``).

    Raises:
        ValueError: one line naming the problem and the devices available, for an unknown name,
            ``cuda`` without a GPU, or a CUDA index this machine lacks.
    """
    if device is None:
        return torch.device("cpu")
    if isinstance(device, str) and device.strip().lower() == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device.strip().lower() if isinstance(device, str) else device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"unknown device {device!r}; use {DEVICE_NAMES}") from error
    available = available_devices()
    if resolved.type == "cpu":
        return torch.device("cpu")
    if resolved.type != "cuda":
        raise ValueError(
            f"device {device!r} is not supported; use {DEVICE_NAMES} (available here: "
            f"{', '.join(available)})"
        )
    if len(available) == 1:
        raise ValueError(
            f"device {device!r} needs CUDA, but this machine has no CUDA GPU (torch "
            f"{torch.__version__}, cuda available: False); available here: cpu"
        )
    index = 0 if resolved.index is None else resolved.index
    if f"cuda:{index}" not in available:
        raise ValueError(
            f"device {device!r} does not exist; available here: {', '.join(available)}"
        )
    return torch.device("cuda", index)


def device_name(device: torch.device) -> str:
    """The hardware behind ``device``: the GPU's name for CUDA, the processor's for the CPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def move_to(value, device: torch.device):
    """``value`` with every tensor and module it holds on ``device``: tensors, modules (copied),
    lists, tuples, dicts and dataclasses, recursively (other values are returned unchanged)."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, nn.Module):  # a copy: a task copied before moving shares no module
        return copy.deepcopy(value).to(device)
    if isinstance(value, dict):
        return {key: move_to(item, device) for key, item in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
        return type(value)(*(move_to(item, device) for item in value))
    if isinstance(value, (list, tuple)):
        return type(value)(move_to(item, device) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            field.name: move_to(getattr(value, field.name), device)
            for field in dataclasses.fields(value)
            if field.init
        }
        return dataclasses.replace(value, **changes)
    return value


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`; else ``ValueError`` listing them."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


@contextlib.contextmanager
def _cuda_fp32(precision: str) -> Iterator[None]:
    """CUDA float32 matmuls and convolutions in ``"ieee"`` or ``"tf32"`` while inside; the
    global settings are restored on exit. (PyTorch runs cuDNN convolutions in TF32 unless told
    otherwise.)"""
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    if hasattr(matmul, "fp32_precision") and hasattr(conv, "fp32_precision"):
        before = matmul.fp32_precision, conv.fp32_precision
        matmul.fp32_precision = conv.fp32_precision = precision
        try:
            yield
        finally:
            matmul.fp32_precision, conv.fp32_precision = before
        return
    legacy = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = legacy


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device) -> Iterator[None]:
    """Evaluate inside this context at ``precision``:

    - ``fp32``: IEEE float32 throughout (on CUDA, TF32 is switched off for the duration, also
      for convolutions, where PyTorch enables it by default);
    - ``tf32``: CUDA matmuls and convolutions in TensorFloat-32 (no effect on the CPU);
    - ``bf16``: ``torch.autocast`` to bfloat16 on ``device``'s type (CPU or CUDA), without its
      cast cache (masks are written into the parameters between forwards).

    Global settings are restored on exit.
    """
    check_precision(precision)
    with contextlib.ExitStack() as stack:
        if device.type == "cuda":
            stack.enter_context(_cuda_fp32("tf32" if precision == "tf32" else "ieee"))
        if precision == "bf16":
            stack.enter_context(
                torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=False)
            )
        yield
