"""Saving and safely loading checkpoints (``weights_only=True``) with clear errors."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class CheckpointError(ValueError):
    """A checkpoint is corrupt or does not match the model it is loaded into."""


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
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds here (pickle, zip, unsafe globals)
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a prunegym checkpoint: {error}"
        ) from error
    if not isinstance(payload, dict) or not isinstance(payload.get("state_dict"), dict):
        raise CheckpointError(f"checkpoint {path} has no 'state_dict' entry")
    payload.setdefault("config", {})
    payload.setdefault("metrics", {})
    return payload


def load_state_into(model: nn.Module, state_dict: dict, source: str | Path) -> nn.Module:
    """Load ``state_dict`` into ``model`` strictly, naming missing, unexpected or misshaped keys."""
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
    model.load_state_dict(state_dict)
    return model
