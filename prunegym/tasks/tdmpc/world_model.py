"""The TD-MPC world model (Hansen, Wang & Su 2022; the paper's Table III).

Components: a convolutional pixel ``encoder`` h, latent ``dynamics`` d, ``reward`` R, policy
prior ``pi`` π and twin ``Q``. Shapes: observations ``(B, frames, size, size)`` uint8, latents
``(B, latent)``, actions ``(B, 1)`` in [−1, 1] (scaled to the pendulum's ±2 N·m outside).
"""

from __future__ import annotations

import torch
from torch import nn

from prunegym.tasks.tdmpc.config import TDMPCConfig


def _mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, hidden), nn.ELU(), nn.Linear(hidden, hidden), nn.ELU(),
        nn.Linear(hidden, outputs),
    )  # fmt: skip


def _q(inputs: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, hidden), nn.LayerNorm(hidden), nn.Tanh(), nn.Linear(hidden, hidden),
        nn.ELU(), nn.Linear(hidden, 1),
    )  # fmt: skip


def _encoder(frames: int, size: int, channels: int, latent: int) -> nn.Sequential:
    layers, side, inputs = [], size, frames
    for kernel in (7, 5, 3, 3):  # stride 2, padding 1: 28 → 12 → 5 → 3 → 2
        layers += [nn.Conv2d(inputs, channels, kernel, stride=2, padding=1), nn.ReLU()]
        side, inputs = (side + 2 - kernel) // 2 + 1, channels
    layers = layers[:-1]  # no activation before flattening
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * side * side, latent))


class WorldModel(nn.Module):
    """TD-MPC's h, d, R, π and Q, with a forward that touches every component (for tracing)."""

    def __init__(self, config: TDMPCConfig | None = None) -> None:
        super().__init__()
        self.config = config or TDMPCConfig()
        env, model = self.config.env, self.config.model
        latent, hidden = model.latent, model.hidden
        self.encoder = _encoder(env.frames, env.size, model.channels, latent)
        self.dynamics = _mlp(latent + 1, hidden, latent)
        self.reward_head = _mlp(latent + 1, hidden, 1)
        self.pi_head = _mlp(latent, hidden, 1)
        self.Q = nn.ModuleList([_q(latent + 1, hidden) for _ in range(2)])
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Orthogonal weights, zero biases; the reward and Q output layers start at zero."""
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                nn.init.orthogonal_(module.weight)
                nn.init.zeros_(module.bias)
        for head in (self.reward_head[-1], self.Q[0][-1], self.Q[1][-1]):
            nn.init.zeros_(head.weight)

    @staticmethod
    def preprocess(observation: torch.Tensor) -> torch.Tensor:
        """uint8 frames → float in [−0.5, 0.5]."""
        return observation.float() / 255.0 - 0.5

    def encode(self, observation: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.preprocess(observation))

    def next(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.dynamics(torch.cat([z, action], dim=-1))

    def reward(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.reward_head(torch.cat([z, action], dim=-1))

    def pi(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.pi_head(z))

    def q(self, z: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        za = torch.cat([z, action], dim=-1)
        return self.Q[0](za), self.Q[1](za)

    def forward(self, observation: torch.Tensor, action: torch.Tensor):
        """Every component once: ``(consistency residual, reward, π, Q1, Q2)``.

        The residual ``d(z, a) − z`` ties the dynamics' output to the encoder's latent, so the
        dependency graph sees the latent as one coupling group across all components.
        """
        z = self.encode(observation)
        q1, q2 = self.q(z, action)
        return self.next(z, action) - z, self.reward(z, action), self.pi(z), q1, q2
