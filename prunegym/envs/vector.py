"""``PruneVectorEnv``: K pruning episodes on one model, every step one batched evaluation."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from prunegym.envs.prune_env import PruneEnv


def check_vector_observation(observation: str) -> None:
    """A one-line ``ValueError`` unless ``observation`` is ``"coefficients"``, the only one a
    :class:`PruneVectorEnv` returns."""
    if observation != "coefficients":
        raise ValueError(
            "PruneVectorEnv observes coefficients; build the PruneEnv with "
            f"observation='coefficients', not {observation!r}"
        )


class PruneVectorEnv(VectorEnv):
    """K copies of a :class:`PruneEnv` episode that share one model and one evaluation cache.

    ``step(actions)`` with ``actions (K, m)`` evaluates all K coefficient vectors with one
    :meth:`PruneEnv.evaluate_batch` call (sliced chains or stacked parameter sets, whichever
    the task supports), so a vectorised agent gets K candidates for about the price of the
    batched forward. Observations ``(K, m)`` are each copy's current coefficients; rewards,
    ``terminations`` (never) and ``truncations`` (after ``max_episode_steps``) are ``(K,)``;
    ``infos`` holds every key of :meth:`PruneEnv.step`'s ``info`` as a ``(K,)`` array with
    Gymnasium's ``_key`` masks. A finished copy is reset on its next step
    (``AutoresetMode.NEXT_STEP``, Gymnasium's default): that step ignores its action and
    returns the dense observation with reward 0. With ``AutoresetMode.SAME_STEP`` it is reset
    in the step that finishes it: the dense observation comes back at once, with ``final_obs``
    and ``final_info`` in ``infos`` (Stable-Baselines3's convention, which
    :class:`prunegym.agents.sb3_vector.BatchedPruneVecEnv` adapts).

    ```python
    import gymnasium as gym
    import prunegym
    envs = gym.make_vec("prunegym/MNISTAutoencoder-v0", num_envs=8,
                        vectorization_mode="vector_entry_point")
    observations, infos = envs.reset(seed=0)
    observations, rewards, terminations, truncations, infos = envs.step(envs.action_space.sample())
    ```

    Args:
        env: A :class:`PruneEnv` to share (it is reset, and its state belongs to the vector
            env from then on).
        num_envs: K.
        max_episode_steps: Steps before a copy is truncated (the registered ids use 50).
        autoreset_mode: ``AutoresetMode.NEXT_STEP`` (default) or ``SAME_STEP``.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        env: PruneEnv,
        num_envs: int,
        max_episode_steps: int | None = 50,
        autoreset_mode: AutoresetMode = AutoresetMode.NEXT_STEP,
    ) -> None:
        if not isinstance(env, PruneEnv):
            raise TypeError(f"env must be a prunegym PruneEnv, got {type(env).__name__}")
        check_vector_observation(env.observation)
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps}")
        modes = (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP)
        if autoreset_mode not in modes:
            raise ValueError(f"autoreset_mode must be one of {modes}, got {autoreset_mode!r}")
        self.metadata = {**self.metadata, "autoreset_mode": autoreset_mode}
        self.env, self.num_envs, self.max_episode_steps = env, num_envs, max_episode_steps
        self.single_action_space = env.action_space
        self.single_observation_space = env.observation_space
        self.action_space = batch_space(env.action_space, num_envs)
        self.observation_space = batch_space(env.observation_space, num_envs)
        size = env.action_space.shape[0]
        self._coefficients = np.zeros((num_envs, size), dtype=np.float32)
        self._steps = np.zeros(num_envs, dtype=np.int64)
        self._autoreset = np.zeros(num_envs, dtype=bool)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every copy to the dense model. ``seed``: an int (or a list whose first entry
        is used: the copies share one model) clears the evaluation cache as
        :meth:`PruneEnv.reset` does; ``options`` as there (``{"target": ρ}``)."""
        if isinstance(seed, list | tuple):
            seed = seed[0] if seed else None
        _, info = self.env.reset(seed=seed, options=options)
        self._dense_info = info
        self._coefficients[:] = 0.0
        self._steps[:] = 0
        self._autoreset[:] = False
        infos: dict[str, Any] = {}
        for k in range(self.num_envs):
            infos = self._add_info(infos, info, k)
        return self._coefficients.copy(), infos

    def step(self, actions):
        """One batched evaluation of the copies' actions ``(K, m)``; see the class docstring."""
        observations, rewards, terminations, truncations, infos, finals = self.transition(actions)
        same_step = self.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
        packed: dict[str, Any] = {}
        for k, info in enumerate(infos):
            if same_step and finals[k] is not None:
                info = {**self._dense_info, "final_obs": finals[k], "final_info": info}
            packed = self._add_info(packed, info, k)
        return observations, rewards, terminations, truncations, packed

    def transition(self, actions):
        """:meth:`step` with the infos as a list of K dicts (each the copy's step info, the
        dense reset info for a copy reset in NEXT_STEP mode) and a list of K final
        observations (``None`` unless the copy finished and was reset in SAME_STEP mode)."""
        actions = np.asarray(actions)
        expected = (self.num_envs, *self.single_action_space.shape)
        if actions.shape != expected:
            raise ValueError(f"actions must have shape {expected}, got {actions.shape}")
        rewards = np.zeros(self.num_envs)
        terminations = np.zeros(self.num_envs, dtype=bool)
        truncations = np.zeros(self.num_envs, dtype=bool)
        active = np.flatnonzero(~self._autoreset)
        evaluated = self.env.evaluate_batch(actions[active]) if len(active) else []
        infos: list[dict[str, Any]] = [self._dense_info] * self.num_envs
        finals: list[np.ndarray | None] = [None] * self.num_envs
        for k in np.flatnonzero(self._autoreset):  # finished last step: reset, ignore action
            self._coefficients[k] = 0.0
            self._steps[k] = 0
        for k, info in zip(active, evaluated, strict=True):
            self._coefficients[k] = np.asarray(actions[k], dtype=np.float32)
            self._steps[k] += 1
            rewards[k] = info["reward"]
            if self.max_episode_steps is not None and self._steps[k] >= self.max_episode_steps:
                truncations[k] = True
            infos[k] = info
        done = terminations | truncations
        if self.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP:
            for k in np.flatnonzero(done):
                finals[k] = self._coefficients[k].copy()
                self._coefficients[k] = 0.0
                self._steps[k] = 0
        else:
            self._autoreset = done
        return self._coefficients.copy(), rewards, terminations, truncations, infos, finals

    def close_extras(self, **kwargs) -> None:
        self.env.close()
