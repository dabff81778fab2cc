"""A Stable-Baselines3 ``VecEnv`` whose K environments step with one batched evaluation.

SB3 does not take Gymnasium's ``VectorEnv``; this adapter gives its algorithms K pruning
episodes on one :class:`PruneEnv`, and every vector step evaluates the K actions with one
``env.unwrapped.evaluate_batch`` call (sliced chains, stacked TD-MPC episodes). Each
evaluation is metered through the :class:`Session` like a single step of the one-env path.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from prunegym.agents.session import BudgetExhausted, Session


class BatchedPruneVecEnv(VecEnv):
    """K fixed-target pruning episodes of ``episode_length`` steps for SB3.

    Observations: each copy's current coefficients ``(K, m)`` float32. Actions: ``(K, m)`` in
    ``[-1, 1]``, mapped linearly to ``[0, upper]`` (as ``RescaleAction`` does on the one-env
    path). A finished copy reports ``terminal_observation`` and ``TimeLimit.truncated`` and
    starts again from ``c = 0``, as ``DummyVecEnv`` does.

    Args:
        session: The run's session (environment, budget, history).
        num_envs: K.
        episode_length: Steps per episode.
    """

    def __init__(self, session: Session, num_envs: int, episode_length: int) -> None:
        self.session = session
        self.core = session.env.unwrapped
        self.upper = session.problem.upper
        size = session.problem.size
        self.render_mode = None
        observation_space = self.core.observation_space
        action_space = spaces.Box(-1.0, 1.0, (size,), np.float32)
        super().__init__(num_envs, observation_space, action_space)
        self.episode_length = episode_length
        self._coefficients = np.zeros((num_envs, size), dtype=np.float32)
        self._steps = np.zeros(num_envs, dtype=np.int64)
        self._actions = np.zeros((num_envs, size), dtype=np.float32)

    def reset(self) -> np.ndarray:
        self.session.env.reset()
        self._coefficients[:] = 0.0
        self._steps[:] = 0
        return self._coefficients.copy()

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
        infos = self.core.evaluate_batch(rows[:allowed])
        for row, info in zip(rows, infos, strict=False):
            session.observe(row, info["reward"], info)
        if allowed < self.num_envs:
            raise BudgetExhausted  # SB3 needs all K; the ones evaluated are recorded
        rewards = np.array([info["reward"] for info in infos], dtype=np.float32)
        self._steps += 1
        dones = self._steps >= self.episode_length
        observations = rows.astype(np.float32)
        out: list[dict[str, Any]] = []
        for k, info in enumerate(infos):
            info = dict(info)
            info["TimeLimit.truncated"] = bool(dones[k])
            if dones[k]:
                info["terminal_observation"] = observations[k].copy()
                observations[k] = 0.0
                self._steps[k] = 0
            out.append(info)
        self._coefficients = observations
        return observations.copy(), rewards, dones, out

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
