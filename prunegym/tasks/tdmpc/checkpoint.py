"""Reading a TD-MPC checkpoint: its world model and its recorded calibration actions."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

from prunegym.tasks.checkpoints import CheckpointError, load_state_into, safe_load
from prunegym.tasks.tdmpc.calibration import checked_calibration_actions
from prunegym.tasks.tdmpc.config import TDMPCConfig
from prunegym.tasks.tdmpc.world_model import WorldModel


def default_checkpoint() -> Path:
    """The shipped TD-MPC pendulum agent, ``prunegym/assets/tdmpc_pendulum.pt``."""
    return Path(str(resources.files("prunegym.assets") / "tdmpc_pendulum.pt"))


def load_world_model(checkpoint: str | Path | None = None) -> WorldModel:
    """The world model stored in a TD-MPC checkpoint (``agent.pt`` or the shipped one)."""
    return read_checkpoint(checkpoint)[0]


def read_checkpoint(checkpoint: str | Path | None = None) -> tuple[WorldModel, torch.Tensor | None]:
    """A TD-MPC checkpoint's world model (evaluation mode, on the CPU) and its recorded
    calibration actions ``(episodes, decisions)``, ``None`` where it records none
    (:mod:`prunegym.tasks.tdmpc.calibration`)."""
    path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    state = safe_load(path, "TD-MPC checkpoint")
    try:
        config = TDMPCConfig.from_dict(state["config"])
        weights = state["model"]
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(
            f"TD-MPC checkpoint {path} lacks a valid 'config' and 'model' entry: {error!r}"
        ) from None
    model = WorldModel(config)
    load_state_into(model, weights, path)
    actions = state.get("calibration_actions")
    if actions is not None:
        actions = checked_calibration_actions(actions, config.env, path)
    return model.eval(), actions
