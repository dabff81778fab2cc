"""Stable-Baselines3 agents (PPO, SAC, TD3) that learn pruning coefficients by interaction.

The environment is wrapped, from the inside out, in a recorder (every step is a metered
evaluation), a ``TimeLimit`` of ``episode_length`` steps, optionally a
:class:`TargetInObservation` wrapper, and :class:`UnitActions` (actions in ``[-1, 1]``).

- **Fixed-target mode** (``target_range=None``): the policy learns coefficients for the env's
  target; the result is the best evaluation seen during training.
- **Episode mode** (``target_range=(low, high)``): each episode draws a target, appends it to
  the observation, and the policy learns to map any target to coefficients, a learned pruning
  policy. After training, the policy is queried at the env's own target and that evaluation is
  the result; :meth:`SB3Agent.predict` queries it at any other target.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import stable_baselines3
from gymnasium import spaces
from gymnasium.wrappers import RescaleAction, TimeLimit
from stable_baselines3.common.logger import Logger

from prunegym.agents.base import Agent
from prunegym.agents.sb3_vector import BatchedPruneVecEnv
from prunegym.agents.session import BudgetExhausted, Session

ALGORITHMS = ("PPO", "SAC", "TD3")


def check_target_range(target_range) -> tuple[float, float]:
    """``(low, high)`` as floats; a one-line ``ValueError`` unless ``target_range`` is a pair of
    real numbers with ``0 <= low <= high < 1``."""
    try:
        low, high = target_range
        real = all(isinstance(v, (int, float, np.integer, np.floating)) for v in (low, high))
    except (TypeError, ValueError):
        real = False
    if not real or isinstance(low, bool) or isinstance(high, bool) or not 0 <= low <= high < 1:
        raise ValueError(
            f"target range must be two numbers with 0 <= low <= high < 1, got {target_range!r}"
        )
    return float(low), float(high)


class UnitActions(RescaleAction):
    """``env`` with its actions rescaled to ``[−1, 1]`` (float32), as SB3 expects; an action
    outside ``[−1, 1]`` (or NaN), or not real numbers of the action space's shape, raises a
    one-line ``ValueError`` in those units."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)  # its arguments: env alone
        ones = np.ones(env.action_space.shape, dtype=np.float32)
        super().__init__(env, -ones, ones)

    def action(self, action):
        values = np.asarray(action)
        shape = self.action_space.shape
        if values.dtype.kind not in "iuf" or values.shape != shape:  # checked in these units
            raise ValueError(
                f"action must be real numbers of shape {shape}, got {type(action).__name__} "
                f"of shape {values.shape} and dtype {values.dtype}"
            )
        if not np.all(np.abs(values) <= 1.0):
            raise ValueError(f"action {values.tolist()} is not in [-1, 1] (rescaled actions)")
        return super().action(action)

    def __reduce__(self):
        """``pickle``: built again around (a copy of) the wrapped environment; the rescaling
        Gymnasium keeps is a local function, which pickle cannot store."""
        return (type(self), (self.env,))


class DrawnTarget(gym.Wrapper):
    """Draw a sparsity target per episode, uniformly from ``[low, high]``; nothing else changes.

    ``reset(seed=s)`` reseeds the draws; ``reset(options={"target": ρ})`` fixes the target for
    that episode instead of drawing it. The target of the current episode is ``self.target``
    (``None`` before the first reset); a target the environment refuses changes neither it nor
    the draws (the environment itself may have taken the seed). With a ``features``
    observation the target is already in its context; :class:`TargetInObservation` appends it
    to a coefficient observation.

    Args:
        env: A PruneEnv or SequentialPruneEnv (possibly wrapped).
        low, high: The range of the targets, ``0 <= low <= high < 1``.
    """

    def __init__(self, env: gym.Env, low: float, high: float) -> None:
        super().__init__(env)
        self.low, self.high = check_target_range((low, high))
        self.target: float | None = None
        self.rng = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = dict(options or {})
        rng = self.rng if seed is None else np.random.default_rng(seed)
        state = rng.bit_generator.state
        if "target" not in options:
            options["target"] = float(rng.uniform(self.low, self.high))
        previous, self.target = self.target, options["target"]  # observation() may read it
        try:
            observation, info = super().reset(seed=seed, options=options)
        except Exception:  # the environment refused the target: the draws are as before
            self.target = previous
            rng.bit_generator.state = state
            raise
        self.rng, self.target = rng, float(self.target)
        return observation, info


class TargetInObservation(DrawnTarget, gym.ObservationWrapper):
    """Draw a sparsity target per episode (:class:`DrawnTarget`) and append it to the
    observation.

    Observation: ``(m + 1,)`` float32, the current coefficients then the target ``ρ``.

    Args:
        env: A PruneEnv (possibly wrapped).
        low, high: Targets are drawn uniformly from ``[low, high]``.
    """

    def __init__(self, env: gym.Env, low: float, high: float) -> None:
        super().__init__(env, low, high)
        inner = env.observation_space
        self.observation_space = spaces.Box(
            np.append(inner.low, self.low).astype(np.float32),
            np.append(inner.high, self.high).astype(np.float32),
            dtype=np.float32,
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.append(observation, np.float32(self.target)).astype(np.float32)


class _Recorder(gym.Wrapper):
    """Meters every step through the session and stops training when the budget is spent."""

    def __init__(self, env: gym.Env, session: Session) -> None:
        super().__init__(env)
        self.session = session

    def step(self, action):
        if self.session.exhausted:
            raise BudgetExhausted
        observation, reward, terminated, truncated, info = self.env.step(action)
        self.session.observe(np.asarray(observation, dtype=np.float64), reward, info)
        return observation, reward, terminated, truncated, info


def _defaults(algo: str, budget: int, n_envs: int = 1) -> dict[str, Any]:
    """Small-budget hyper-parameters; any of them can be overridden by ``algo_options``.
    PPO's rollout (``n_steps`` per environment times ``n_envs``) stays about the same size."""
    if algo == "PPO":
        rollout = int(2 ** np.clip(np.floor(np.log2(max(budget, 1) / 8)), 4, 8))
        n_steps = max(2, rollout // n_envs)
        return {"n_steps": n_steps, "batch_size": min(64, n_steps * n_envs), "n_epochs": 10}
    return {"learning_starts": int(np.clip(budget // 10, 10, 200)), "batch_size": 64}


class SB3Agent(Agent):
    """Train a Stable-Baselines3 policy on the env and return the best coefficients.

    Args:
        algo: ``"PPO"``, ``"SAC"`` or ``"TD3"``.
        policy: SB3 policy name.
        episode_length: Steps per episode (1: each episode is one allocation).
        target_range: ``(low, high)`` turns on episode mode (target in the observation).
        seed: Seed of the algorithm and of the target draws.
        algo_options: Keyword arguments for the SB3 algorithm (override the defaults).
        n_envs: Parallel episodes (fixed-target mode only). With ``n_envs > 1`` the algorithm
            trains on a :class:`BatchedPruneVecEnv`: each of its steps evaluates the
            ``n_envs`` actions with one ``env.unwrapped.evaluate_batch`` call.
    """

    terminates = False

    def __init__(
        self,
        algo: str = "PPO",
        policy: str | type = "MlpPolicy",
        episode_length: int = 1,
        target_range: tuple[float, float] | None = None,
        seed: int | None = 0,
        algo_options: dict | None = None,
        n_envs: int = 1,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        algo = algo.upper()
        if algo not in ALGORITHMS:
            raise ValueError(f"unknown SB3 algorithm {algo!r}; choose one of {ALGORITHMS}")
        if episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length}")
        if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
            raise ValueError(f"n_envs must be an integer >= 1, got {n_envs!r}")
        if target_range is not None:
            target_range = check_target_range(target_range)
        if n_envs > 1 and target_range is not None:
            raise ValueError(
                "n_envs > 1 needs fixed-target mode: the copies share one environment and "
                "its target, so target_range must be None"
            )
        self.n_envs = n_envs
        self.algo, self.policy, self.episode_length = algo, policy, int(episode_length)
        self.target_range, self.seed = target_range, seed
        self.algo_options = dict(algo_options or {})
        self.name = algo.lower()
        self.model = None

    def wrap(self, env: gym.Env, session: Session | None = None) -> gym.Env:
        """The training env: recorder, TimeLimit, target observation, UnitActions."""
        wrapped = _Recorder(env, session) if session is not None else env
        wrapped = TimeLimit(wrapped, max_episode_steps=self.episode_length)
        if self.target_range is not None:
            wrapped = TargetInObservation(wrapped, *self.target_range)
        return UnitActions(wrapped)

    def solve(self, session: Session) -> None:

        budget = session.budget.evaluations or 10_000_000
        options = {**_defaults(self.algo, budget, self.n_envs), **self.algo_options}
        if self.n_envs > 1:
            training = BatchedPruneVecEnv(session, self.n_envs, self.episode_length)
        else:
            training = self.wrap(session.env, session)
        algorithm = getattr(stable_baselines3, self.algo)
        self.model = algorithm(
            self.policy, training, seed=self.seed, device="cpu", verbose=0, **options
        )
        if "tensorboard_log" not in self.algo_options:
            # SB3's default quiet logger still creates an empty /tmp/SB3-<date> folder per run
            self.model.set_logger(Logger(folder=None, output_formats=[]))
        target = session.problem.target
        try:
            self.model.learn(total_timesteps=budget)
        except BudgetExhausted:
            pass  # the session's budget ran out before SB3's step count did
        finally:
            if self.target_range is not None:
                session.env.reset(options={"target": target})
        if self.target_range is not None:  # the policy's answer at the env's own target
            session.evaluate(self.predict(target), force=True)

    def predict(self, target: float | None = None) -> np.ndarray:
        """The trained policy's coefficients ``(m,)`` in ``[0, 0.95]`` from ``c = 0``, at
        ``target`` (episode mode only; fixed-target policies ignore it)."""
        if self.model is None:
            raise RuntimeError("train the agent with run(env, budget) before predict()")
        space = self.model.observation_space
        size = space.shape[0] - (1 if self.target_range is not None else 0)
        observation = np.zeros(space.shape, dtype=np.float32)
        if self.target_range is not None:
            if target is None:
                raise ValueError("episode-mode policies need a target")
            observation[size] = target
        action, _ = self.model.predict(observation, deterministic=True)
        high = 0.95
        return np.clip((np.asarray(action, dtype=np.float64) + 1.0) / 2.0 * high, 0.0, high)
