"""Stable-Baselines3's ``VecEnv`` interface over :class:`prunegym.envs.PruneVectorEnv`.

SB3 does not take Gymnasium's ``VectorEnv``; this adapter gives its algorithms the K pruning
episodes of a ``PruneVectorEnv`` (same-step autoreset, SB3's convention), so every vector step
is one batched evaluation (sliced chains, stacked TD-MPC episodes). The episode counters and
the autoreset live in the vector env; here are only the action scaling, the metering through
the :class:`Session` and SB3's info keys.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv

from prunegym.agents.session import BudgetExhausted, Session
from prunegym.envs.vector import PruneVectorEnv


class BatchedPruneVecEnv(VecEnv):
    """K fixed-target pruning episodes of ``episode_length`` steps for SB3.

    Observations: each copy's current coefficients ``(K, m)`` float32. Actions: ``(K, m)`` in
    ``[-1, 1]``, mapped linearly to ``[0, upper]`` (as ``RescaleAction`` does on the one-env
    path). A finished copy reports ``terminal_observation`` and ``TimeLimit.truncated`` and
    starts again from ``c = 0``, as ``DummyVecEnv`` does. Every step is charged to the session.

    Args:
        session: The run's session (environment, budget, history).
        num_envs: K.
        episode_length: Steps per episode.
    """

    def __init__(self, session: Session, num_envs: int, episode_length: int) -> None:
        self.session = session
        self.core = session.env.unwrapped
        self.vector = PruneVectorEnv(
            self.core, num_envs, episode_length, autoreset_mode=AutoresetMode.SAME_STEP
        )
        self.upper = session.problem.upper
        self.render_mode = None
        action_space = spaces.Box(-1.0, 1.0, (session.problem.size,), np.float32)
        super().__init__(num_envs, self.core.observation_space, action_space)
        self._actions = np.zeros((num_envs, session.problem.size))

    def reset(self) -> np.ndarray:
        observations, _ = self.vector.reset()
        return observations

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.float64).reshape(self.num_envs, -1)

    def step_wait(self):
        session = self.session
        allowed = self.num_envs
        if session.budget.evaluations is not None:
            allowed = min(allowed, session.budget.evaluations - session.evaluations)
        if allowed <= 0 or session.exhausted:
            raise BudgetExhausted
        rows = (np.clip(self._actions, -1.0, 1.0) + 1.0) / 2.0 * self.upper
        rows = np.clip(rows, 0.0, self.upper)
        if allowed < self.num_envs:  # SB3 needs all K: record the ones the budget allows
            for row, info in zip(rows, self.core.evaluate_batch(rows[:allowed]), strict=False):
                session.observe(row, info["reward"], info)
            raise BudgetExhausted
        observations, rewards, terminations, truncations, infos, finals = self.vector.transition(
            rows
        )
        out: list[dict[str, Any]] = []
        for k, (row, info) in enumerate(zip(rows, infos, strict=True)):
            session.observe(row, info["reward"], info)
            info = dict(info)
            info["TimeLimit.truncated"] = bool(truncations[k] and not terminations[k])
            if finals[k] is not None:
                info["terminal_observation"] = finals[k]
            out.append(info)
        dones = terminations | truncations
        return observations, rewards.astype(np.float32), dones, out

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs):
        method = getattr(self.core, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices=None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)
