"""Where a result came from: library versions and a summary of the machine."""

from __future__ import annotations

import os
import platform
from importlib import metadata

import torch

from prunegym.tasks.devices import device_name

PACKAGES = (
    "prunegym",
    "torch",
    "torchvision",
    "torch-pruning",
    "gymnasium",
    "stable-baselines3",
    "numpy",
)


def versions() -> dict[str, str]:
    """Installed versions of Python and the packages that decide a result's numbers."""
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else the architecture."""
    return device_name(torch.device("cpu"))


def machine() -> dict[str, object]:
    """Operating system, CPU model, the vector instructions PyTorch's kernels use, core count,
    torch threads and whether CUDA was visible (no host name: result files get shared)."""
    return {
        "system": f"{platform.system()} {platform.release()}",
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
