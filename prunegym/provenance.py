"""Where a result came from: library versions and a summary of the machine."""

from __future__ import annotations

import os
import platform
from importlib import metadata

import torch

PACKAGES = ("prunegym", "torch", "torch-pruning", "gymnasium", "numpy")


def versions() -> dict[str, str]:
    """Installed versions of Python and the packages that decide a result's numbers."""
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def machine() -> dict[str, object]:
    """Operating system, CPU, core count, torch threads and whether CUDA was visible (no host
    name: result files get shared)."""
    return {
        "system": f"{platform.system()} {platform.release()}",
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
