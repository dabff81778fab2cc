"""Pixel-pendulum episodes as tensor operations on any device (the GPU path of the TD-MPC task).

Three pieces replace the Gymnasium wrapper stack, so that K candidates × E episodes step in
lockstep without leaving the device:

- :class:`FrameTable`: every frame the renderer's cache can return (one per quantised angle,
  ``bins`` of them), rendered once by Gymnasium's renderer, as one ``(bins, size, size)`` uint8
  tensor. A frame stack is held as ``(B, frames)`` table keys.
- :class:`TensorPendulums`: Pendulum-v1's equations in float64 tensors, with the float32 torque
  terms of Gymnasium's scalar code, the action repeat and the 200-step limit.
- :class:`FirstConvTable`: the encoder's first convolution sees only table frames, and channel
  masks only act on its output channels, so its response to each table frame in each stack
  slot is computed once: ``conv(stack) = Σ_f T[key_f, f] + b``, three gathers instead of a
  convolution per decision.

On the CPU the same code runs and its returns match the Gymnasium-wrapped episodes to float
tolerance (``tests/test_tdmpc.py``); the numpy lockstep runner stays the CPU default because
it reproduces the wrapped episodes bit for bit.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from prunegym.tasks.tdmpc.episodes import MAX_TORQUE, EpisodeRunner, LockstepPendulums

TWO_PI = 2 * math.pi


class FrameTable:
    """The renderer's frames for all ``bins`` quantised angles, on ``device``.

    Args:
        runner: An :class:`EpisodeRunner` (its renderer and frame size).
        device: Where the table lives.
    """

    def __init__(self, runner: EpisodeRunner, device: torch.device) -> None:
        renderer = LockstepPendulums(runner, 1).renderer
        if not renderer.bins:
            raise ValueError("the frame table needs the renderer's angle cache (bins > 0)")
        self.bins = renderer.bins
        frames = [renderer.frame(key * TWO_PI / self.bins) for key in range(self.bins)]
        self.frames = torch.as_tensor(np.stack(frames), device=device)  # (bins, size, size)

    def keys(self, theta: torch.Tensor) -> torch.Tensor:
        """``(B,)`` int64 table keys of angles ``theta`` (rad), as ``PendulumRenderer.frame``
        quantises them (round half to even)."""
        scaled = torch.remainder(theta, TWO_PI) / TWO_PI * self.bins
        return torch.round(scaled).long() % self.bins

    def stacks(self, keys: torch.Tensor) -> torch.Tensor:
        """``(B, frames, size, size)`` uint8 frame stacks of keys ``(B, frames)``."""
        return self.frames[keys]


class TensorPendulums:
    """``copies × E`` pixel pendulums stepped as tensors (E = the runner's seeds).

    Args:
        runner: Seeds (start states) and environment settings.
        table: The frames, on the device the episodes run on.
    """

    def __init__(self, runner: EpisodeRunner, table: FrameTable) -> None:
        lockstep = LockstepPendulums(runner, 1)  # Gymnasium's constants and time limit
        self.table, self.config = table, runner.config
        self.g, self.m, self.l, self.dt = lockstep.g, lockstep.m, lockstep.l, lockstep.dt
        self.max_speed, self.max_torque = lockstep.max_speed, lockstep.max_torque
        self.steps = lockstep.steps
        starts = []
        for env, seed in zip(runner.envs, runner.seeds, strict=True):
            env.reset(seed=seed)
            starts.append(np.array(env.unwrapped.state, dtype=np.float64))
        self.starts = torch.as_tensor(np.stack(starts), device=table.frames.device)  # (E, 2)

    @torch.no_grad()
    def run(self, policy: Callable[[torch.Tensor], torch.Tensor], copies: int = 1):
        """Returns ``(copies, E)`` float64 on the device. ``policy(keys (copies·E, frames))
        -> actions (copies·E, 1)`` in [−1, 1], rows copy-major."""
        state = self.starts.repeat(copies, 1)
        theta, speed = state[:, 0].clone(), state[:, 1].clone()
        keys = self.table.keys(theta)[:, None].repeat(1, self.config.frames)
        returns = torch.zeros_like(theta)
        for _ in range(self.steps // self.config.action_repeat):
            actions = policy(keys).reshape(len(theta)).float()
            torque = (actions.clamp(-1.0, 1.0) * MAX_TORQUE).clamp(
                -self.max_torque, self.max_torque
            )
            for _ in range(self.config.action_repeat):
                theta, speed, reward = self._physics(theta, speed, torque)
                returns += reward
            keys = torch.cat([keys[:, 1:], self.table.keys(theta)[:, None]], dim=1)
        return returns.reshape(copies, len(self.starts))

    def _physics(self, theta, speed, torque):
        """One Pendulum-v1 step: float64 state, the torque terms in float32 as in Gymnasium."""
        g, m, length, dt = self.g, self.m, self.l, self.dt
        normalised = torch.remainder(theta + math.pi, TWO_PI) - math.pi
        costs = normalised**2 + 0.1 * speed**2 + 0.001 * (torque**2)
        new_speed = speed + (3 * g / (2 * length) * torch.sin(theta) + 3.0 / (m * length**2)
                             * torque) * dt  # fmt: skip
        new_speed = new_speed.clamp(-self.max_speed, self.max_speed)
        return theta + new_speed * dt, new_speed, -costs


class FirstConvTable:
    """The first convolution's response to every table frame in every stack slot.

    ``T[key, f] = conv(preprocess(frame_key), W[:, f])`` without bias, ``(bins, frames, C, H,
    W)``; a stack's output is ``Σ_f T[key_f, f] + b`` (the convolution is linear in each input
    channel). The responses are rebuilt when the convolution's weights change (a mask written
    in place). The table keeps no reference to the convolution.

    Args:
        table: The frame table.
        preprocess: uint8 frames → the convolution's float input.
    """

    def __init__(self, table: FrameTable, preprocess) -> None:
        self.table, self.preprocess = table, preprocess
        self._weight: torch.Tensor | None = None
        self._responses: torch.Tensor | None = None

    def responses(self, conv: nn.Conv2d) -> torch.Tensor:
        """``(bins, frames, C, H, W)`` for ``conv``'s current weights."""
        weight = conv.weight.detach()
        if self._weight is None or not torch.equal(self._weight, weight):
            frames = self.preprocess(self.table.frames[:, None])  # (bins, 1, size, size)
            slots = [
                functional.conv2d(frames, weight[:, f : f + 1], None, conv.stride, conv.padding)
                for f in range(weight.shape[1])
            ]
            self._responses = torch.stack(slots, dim=1)
            self._weight = weight.clone()
        return self._responses

    def forward(self, conv: nn.Conv2d) -> Callable[[torch.Tensor], torch.Tensor]:
        """``keys (B, frames) -> conv(stacks) (B, C, H, W)`` for ``conv`` as it is now (the
        responses are looked up once, here)."""
        responses, bias = self.responses(conv), conv.bias

        def output(keys: torch.Tensor) -> torch.Tensor:
            values = responses[keys[:, 0], 0]
            for slot in range(1, keys.shape[1]):
                values = values + responses[keys[:, slot], slot]
            return values if bias is None else values + bias.detach()[:, None, None]

        return output


@contextlib.contextmanager
def replaced_forward(module: nn.Module, forward: Callable) -> Iterator[None]:
    """Inside, calling ``module`` runs ``forward`` instead of its own, with the module's hooks
    (the candidates' masks) still applied around it."""
    module.forward = forward
    try:
        yield
    finally:
        del module.forward
