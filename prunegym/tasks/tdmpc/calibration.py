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

import numpy as np
import torch
from torch import nn

from prunegym.tasks.checkpoints import CheckpointError
from prunegym.tasks.tdmpc.config import EnvConfig
from prunegym.tasks.tdmpc.episodes import EpisodeRunner, network_controller

CALIBRATION_SEEDS_START = 30_000
CALIBRATION_NOISE = 0.3  # standard deviation added to π's action, before clipping to [−1, 1]


def decisions_per_episode(config: EnvConfig) -> int:
    """Agent decisions in one 200-step episode."""
    return 200 // config.action_repeat


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
        noise = torch.randn(action.shape, generator=generator).to(device)
        frames.append(observations.clone())
        actions.append((action + CALIBRATION_NOISE * noise).clamp(-1, 1))
        return actions[-1]

    _runner(episodes, config).run(network_controller(act, device))
    return torch.cat(frames), torch.cat(actions)


def record_calibration_actions(model: nn.Module, config: EnvConfig, episodes: int = 4):
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


def checked_calibration_actions(value, config: EnvConfig, path) -> torch.Tensor:
    """A checkpoint's ``calibration_actions`` entry, or a one-line :class:`CheckpointError`
    naming the file: a float tensor ``(episodes ≥ 1, decisions)``, finite, in [−1, 1]."""
    shape = (decisions_per_episode(config),)
    if not (
        isinstance(value, torch.Tensor)
        and value.is_floating_point()
        and value.dim() == 2
        and len(value) >= 1
        and tuple(value.shape[1:]) == shape
        and bool(torch.all(value.abs() <= 1.0))  # False for NaN too
    ):
        described = (
            f"{value.dtype} {tuple(value.shape)}"
            if isinstance(value, torch.Tensor)
            else type(value).__name__
        )
        raise CheckpointError(
            f"TD-MPC checkpoint {path}: 'calibration_actions' must be a float tensor (episodes, "
            f"{shape[0]}) with values in [-1, 1], got {described}"
        )
    return value.float()
