"""The frames and actions that calibrate a TD-MPC agent's pruning statistics.

Calibration episodes are the dense agent's own: its policy prior π plus a little noise, on
seeds 30,000 on. Played closed loop they depend on the CPU's float kernels: a last-bit
difference in an action moves the pendulum by a hair, a hair can flip a pixel of the next
frame, and the episodes part ways (89 of 400 frames differed between PyTorch's AVX2 and
portable kernels). Other frames give other channel scores and compensation, so the same
coefficients would prune another network on another machine. A checkpoint therefore records
the actions once (``calibration_actions``: ``(episodes, decisions)`` float32 in [−1, 1]), and
the frames are replayed from them open loop: no network in the loop, the same frames on every
CPU and device.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prunegym.tasks.checkpoints import CheckpointError
from prunegym.tasks.tdmpc.config import EnvConfig
from prunegym.tasks.tdmpc.episodes import EpisodeRunner, network_controller

CALIBRATION_SEEDS_START = 30_000
CALIBRATION_EPISODES = 4  # what the task asks for by default, and what checkpoints record
CALIBRATION_NOISE = 0.3  # standard deviation added to π's action, before clipping to [−1, 1]


def _runner(episodes: int, config: EnvConfig) -> EpisodeRunner:
    seeds = range(CALIBRATION_SEEDS_START, CALIBRATION_SEEDS_START + episodes)
    return EpisodeRunner(list(seeds), config)


@torch.no_grad()
def play_calibration(model: nn.Module, config: EnvConfig, episodes: int):
    """Play ``episodes`` calibration episodes closed loop with ``model`` (a
    :class:`~prunegym.tasks.tdmpc.world_model.WorldModel` on any device): frames
    ``(N, frames, size, size)`` uint8 and actions ``(N, 1)`` float32 on the model's device,
    N = episodes × decisions, one decision of every episode after another."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(0)  # the same noise on every device
    frames, actions = [], []

    def act(observations: torch.Tensor) -> torch.Tensor:
        action = model.pi(model.encode(observations))
        noise = torch.randn(action.shape, generator=generator, device="cpu").to(device)
        frames.append(observations.clone())
        actions.append((action + CALIBRATION_NOISE * noise).clamp(-1, 1))
        return actions[-1]

    _runner(episodes, config).run(network_controller(act, device))
    return torch.cat(frames), torch.cat(actions)


def record_calibration_actions(
    model: nn.Module, config: EnvConfig, episodes: int = CALIBRATION_EPISODES
) -> torch.Tensor:
    """The actions of :func:`play_calibration` as a checkpoint records them: ``(episodes,
    decisions)`` float32 on the CPU."""
    actions = play_calibration(model, config, episodes)[1]
    return actions.view(-1, episodes).T.contiguous().cpu()


def replay_calibration(actions: torch.Tensor, config: EnvConfig, device: torch.device):
    """The calibration data of recorded ``actions`` ``(episodes, decisions)``: frames
    ``(N, frames, size, size)`` uint8 and actions ``(N, 1)`` float32 on ``device``, N =
    episodes × decisions, one decision of every episode after another."""
    table = actions.float().numpy()
    frames = []

    def controller(observations: np.ndarray, states: np.ndarray) -> np.ndarray:
        frames.append(observations.copy())  # the runner may reuse its array
        return table[:, len(frames) - 1, None]

    _runner(len(table), config).run(controller)
    rows = torch.from_numpy(table.T.reshape(-1, 1).copy())
    return torch.from_numpy(np.concatenate(frames)).to(device), rows.to(device)


def calibration_data(
    model: nn.Module,
    config: EnvConfig,
    episodes: int,
    recorded: torch.Tensor | None,
    checkpoint: Path,
    device: torch.device,
):
    """The calibration data of the first ``episodes`` episodes, as :func:`replay_calibration`
    gives them: replayed from the ``recorded`` actions of ``checkpoint``, or, where it records
    fewer, all played closed loop with ``model`` (with a warning: the frames then depend on
    this CPU's float kernels)."""
    if recorded is not None and len(recorded) >= episodes:
        return replay_calibration(recorded[:episodes], config, device)
    warnings.warn(
        f"TD-MPC checkpoint {checkpoint} records {0 if recorded is None else len(recorded)} "
        f"calibration episodes, fewer than calibration_episodes={episodes}; playing all "
        f"{episodes} closed loop, so the channel scores depend on this CPU's float kernels "
        "(prunegym.training.tdmpc.add_calibration_actions records them in the checkpoint)",
        stacklevel=_first_caller_outside_prunegym(),
    )
    frames, actions = play_calibration(model, config, episodes)
    return frames.to(device), actions.to(device)


def _first_caller_outside_prunegym() -> int:
    """The ``stacklevel`` that points a warning raised by our caller at the first frame
    outside prunegym (the user's line, whichever prunegym function it went through)."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("prunegym"):
        frame, level = frame.f_back, level + 1
    return level


def checked_calibration_actions(value, config: EnvConfig, path) -> torch.Tensor:
    """A checkpoint's ``calibration_actions`` entry as float32, or a one-line
    :class:`CheckpointError` naming the file and what is wrong: it must be a float tensor
    ``(episodes ≥ 1, decisions)`` with finite values in [−1, 1]."""
    problem = None
    if not isinstance(value, torch.Tensor):
        problem = f"got a {type(value).__name__}"
    elif not value.is_floating_point():
        problem = f"got {value.dtype}"
    elif value.dim() != 2 or value.shape[1] != config.decisions or len(value) < 1:
        problem = f"got shape {tuple(value.shape)}"
    elif not bool(torch.all(value.abs() <= 1.0)):  # False for NaN too
        problem = "some values are NaN or outside [-1, 1]"
    if problem:
        raise CheckpointError(
            f"TD-MPC checkpoint {path}: 'calibration_actions' must be a float tensor (episodes "
            f">= 1, {config.decisions}) with values in [-1, 1]; {problem}"
        )
    return value.float()
