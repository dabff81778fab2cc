"""Saving and safely loading checkpoints (``weights_only=True``) with clear errors.

Every checkpoint prunegym reads goes through :func:`safe_load` (tensors and plain containers
only; a file holding anything else is refused, never unpickled) and :func:`load_state_into`,
which flushes subnormal floats to zero: weight decay leaves weights below 1.2e-38 that change
no metric but slow matrix products several-fold on some CPUs.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from pickle import UnpicklingError

import torch
from torch import nn


class CheckpointError(ValueError):
    """A checkpoint is corrupt or does not match the model it is loaded into."""


class SubnormalWeightsWarning(UserWarning):
    """A checkpoint held subnormal floats; they were set to zero when it was loaded."""


def safe_load(path: str | Path, what: str = "checkpoint"):
    """``torch.load(path, weights_only=True)`` on the CPU, with one-line errors that name the
    file and what is wrong with it.

    Raises:
        FileNotFoundError: if ``path`` is not a file.
        CheckpointError: if the file is truncated, not a PyTorch file, or holds Python objects
            other than tensors and plain containers (which are never unpickled).
    """
    path = Path(path)
    if path.is_dir():
        raise FileNotFoundError(f"{what} {path} is a folder; give the file itself")
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with warnings.catch_warnings(record=True) as caught:  # shown only if the load works
            warnings.simplefilter("always")
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds here (pickle, zip, unsafe globals)
        raise CheckpointError(f"{what} {path} {_load_problem(error)}") from None
    for warning in caught:
        warnings.warn(warning.message, stacklevel=2)  # as if from the caller
    return loaded


def _load_problem(error: Exception) -> str:
    """What is wrong with a file that ``torch.load(weights_only=True)`` refused, in a few
    words, without PyTorch's advice to load it unsafely."""
    text = str(error)
    unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if unsafe:
        return (
            f"holds a Python object ({unsafe.group(1)}) besides tensors and plain containers; "
            "prunegym reads only tensors from checkpoints and refuses to unpickle anything else"
        )
    if "zip archive" in text or isinstance(error, EOFError):
        return "is truncated or corrupt: it is not a complete PyTorch zip file"
    # a text file: torch's unpickler raises a bare KeyError
    if isinstance(error, UnpicklingError | RuntimeError | ValueError | KeyError):
        return "is not a PyTorch checkpoint (its bytes are not a saved tensor file)"
    first = text.strip().splitlines()[0][:200] if text.strip() else "no message"
    return f"could not be read ({type(error).__name__}: {first})"


def flush_subnormals(state_dict: dict) -> int:
    """Set every subnormal entry (``0 < |x| < finfo.tiny``) of the floating-point tensors in
    ``state_dict`` to zero, in place; returns how many there were."""
    flushed = 0
    for tensor in state_dict.values():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
            tiny = torch.finfo(tensor.dtype).tiny
            subnormal = (tensor != 0) & (tensor.abs() < tiny)
            count = int(subnormal.sum())
            if count:
                tensor.masked_fill_(subnormal, 0.0)
                flushed += count
    return flushed


def save_atomically(state, path: str | Path) -> None:
    """``torch.save(state, path)`` through a ``.tmp`` file renamed into place, so that an
    interruption never leaves a half-written file at ``path``."""
    path = Path(path)
    partial = path.with_suffix(".tmp")
    torch.save(state, partial)
    partial.replace(path)


def save_checkpoint(path: str | Path, model: nn.Module, config: dict, metrics: dict) -> Path:
    """Write ``{"state_dict", "config", "metrics"}`` to ``path`` (tensors and plain values only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
    torch.save({"state_dict": state, "config": dict(config), "metrics": dict(metrics)}, path)
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        CheckpointError: if the file cannot be read safely or lacks the expected keys.
    """
    payload = safe_load(path)
    if not isinstance(payload, dict) or not isinstance(payload.get("state_dict"), dict):
        raise CheckpointError(f"checkpoint {path} has no 'state_dict' entry")
    payload.setdefault("config", {})
    payload.setdefault("metrics", {})
    return payload


def load_state_into(model: nn.Module, state_dict: dict, source: str | Path) -> nn.Module:
    """Load ``state_dict`` into ``model`` strictly, naming missing, unexpected or misshaped keys.

    Subnormal floats are flushed to zero first (:func:`flush_subnormals`, on copies: the
    caller's tensors are left alone), with one :class:`SubnormalWeightsWarning` saying how many.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    misshaped = sorted(
        f"{name} {tuple(state_dict[name].shape)} != {tuple(expected[name].shape)}"
        for name in set(expected) & set(state_dict)
        if not isinstance(state_dict[name], torch.Tensor)
        or state_dict[name].shape != expected[name].shape
    )
    if missing or unexpected or misshaped:
        raise CheckpointError(
            f"checkpoint {source} does not match the model: missing={missing}, "
            f"unexpected={unexpected}, misshaped={misshaped}"
        )
    state_dict = {
        name: value.clone() if isinstance(value, torch.Tensor) else value
        for name, value in state_dict.items()
    }
    flushed = flush_subnormals(state_dict)
    if flushed:
        warnings.warn(
            f"checkpoint {source}: {flushed:,} subnormal weights (|w| < 1.2e-38) set to zero; "
            "they change no metric but slow matrix products on some CPUs",
            SubnormalWeightsWarning,
            stacklevel=2,
        )
    model.load_state_dict(state_dict)
    return model
