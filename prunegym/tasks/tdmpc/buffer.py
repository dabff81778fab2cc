"""Replay buffer of whole episodes, sampled as short sequences for TD-MPC updates."""

from __future__ import annotations

import numpy as np
import torch


class EpisodeBuffer:
    """Fixed-length episodes in preallocated arrays; uniform sampling of sub-sequences.

    Args:
        capacity: Most episodes kept (oldest overwritten).
        length: Decisions per episode ``T``.
        observation_shape: Shape of one observation (uint8).
        seed: Sampling seed.

    Stores observations ``(N, T + 1, *shape)`` uint8, actions ``(N, T, 1)`` in [−1, 1] and
    rewards ``(N, T)`` (raw environment rewards).
    """

    def __init__(
        self, capacity: int, length: int, observation_shape: tuple[int, ...], seed: int = 0
    ) -> None:
        self.capacity, self.length = capacity, length
        self.observations = np.zeros((capacity, length + 1, *observation_shape), np.uint8)
        self.actions = np.zeros((capacity, length, 1), np.float32)
        self.rewards = np.zeros((capacity, length), np.float32)
        self.episodes = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return min(self.episodes, self.capacity)

    def add(self, observations: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Add one episode: ``(T + 1, *shape)``, ``(T, 1)``, ``(T,)``."""
        slot = self.episodes % self.capacity
        self.observations[slot] = observations
        self.actions[slot] = actions
        self.rewards[slot] = rewards
        self.episodes += 1

    def sample(self, batch: int, horizon: int):
        """``(obs (H+1, B, ...) uint8, actions (H, B, 1), rewards (H, B))`` as tensors."""
        episodes = self.rng.integers(0, len(self), batch)
        starts = self.rng.integers(0, self.length - horizon + 1, batch)
        steps = starts[:, None] + np.arange(horizon + 1)
        observations = self.observations[episodes[:, None], steps]
        actions = self.actions[episodes[:, None], steps[:, :-1]]
        rewards = self.rewards[episodes[:, None], steps[:, :-1]]
        return (
            torch.from_numpy(observations).transpose(0, 1),
            torch.from_numpy(actions).transpose(0, 1),
            torch.from_numpy(rewards).transpose(0, 1),
        )

    def state_dict(self) -> dict:
        """Tensors and plain values only, so that resuming loads with ``weights_only=True``."""
        count = len(self)
        return {
            "observations": torch.from_numpy(self.observations[:count].copy()),
            "actions": torch.from_numpy(self.actions[:count].copy()),
            "rewards": torch.from_numpy(self.rewards[:count].copy()),
            "episodes": self.episodes,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        count = len(state["observations"])
        self.observations[:count] = np.asarray(state["observations"])
        self.actions[:count] = np.asarray(state["actions"])
        self.rewards[:count] = np.asarray(state["rewards"])
        self.episodes = int(state["episodes"])
        self.rng.bit_generator.state = state["rng"]
