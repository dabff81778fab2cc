"""Run K pixel-pendulum episodes together, batching the controller's calls.

A controller is ``controller(observations (K, frames, size, size) uint8, states (K, 2)) ->
actions (K, 1)`` in [−1, 1] (scaled to ±2 N·m). ``states`` holds each pendulum's true angle
and angular velocity (only the classical controller reads it).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

from prunegym.tasks.tdmpc.config import EnvConfig
from prunegym.tasks.tdmpc.pendulum import make_pixel_pendulum

MAX_TORQUE = 2.0
Controller = Callable[[np.ndarray, np.ndarray], np.ndarray]


class EpisodeRunner:
    """K pixel pendulums stepped in lockstep (every episode has the same length).

    Args:
        seeds: One reset seed per episode; they fix the starting states.
        config: Frame size, stacked frames and action repeat.
    """

    def __init__(self, seeds: list[int], config: EnvConfig | None = None) -> None:
        self.config = config or EnvConfig()
        self.seeds = list(seeds)
        self.envs = [
            make_pixel_pendulum(self.config.size, self.config.frames, self.config.action_repeat)
            for _ in self.seeds
        ]

    def run(self, controller: Controller, copies: int = 1) -> np.ndarray:
        """Episode returns (sum of Pendulum-v1 rewards over 200 steps): ``(K,)``, or
        ``(copies, K)`` for ``copies > 1`` (the controller then sees ``copies·K`` rows).
        The pendulums step as arrays (:class:`LockstepPendulums`), exactly as
        :meth:`run_wrapped` steps the Gymnasium environments."""
        returns = LockstepPendulums(self, copies).run(controller)
        return returns[0] if copies == 1 else returns

    def run_wrapped(self, controller: Controller) -> np.ndarray:
        """``(K,)`` returns, stepping each Gymnasium wrapper stack (the reference)."""
        observations = np.stack(
            [env.reset(seed=seed)[0] for env, seed in zip(self.envs, self.seeds, strict=True)]
        )
        returns = np.zeros(len(self.envs))
        done = False
        while not done:
            states = np.stack([env.unwrapped.state for env in self.envs])
            actions = np.asarray(controller(observations, states), dtype=np.float32)
            actions = np.clip(actions.reshape(len(self.envs), 1), -1.0, 1.0) * MAX_TORQUE
            results = [env.step(a) for env, a in zip(self.envs, actions, strict=True)]
            observations = np.stack([r[0] for r in results])
            returns += [r[1] for r in results]
            done = any(r[2] or r[3] for r in results)
        return returns


class LockstepPendulums:
    """``copies × K`` pixel pendulums stepped as arrays, for evaluating many controllers at once.

    It reproduces :class:`EpisodeRunner` (Gymnasium's Pendulum-v1 equations with the same float
    types, the action repeat, the 200-step limit, the shared frame cache and frame stacking)
    without one wrapper stack per pendulum; ``benchmarks/batched_candidates.py`` and the tests
    check that its returns equal the wrapped environments'. Copy ``j`` of episode ``i`` starts
    from the state that ``seeds[i]`` gives.
    """

    def __init__(self, runner: EpisodeRunner, copies: int) -> None:
        self.runner, self.copies = runner, copies
        inner = runner.envs[0].unwrapped
        self.g, self.m, self.l, self.dt = inner.g, inner.m, inner.l, inner.dt
        self.max_speed, self.max_torque = inner.max_speed, inner.max_torque
        self.steps, self.renderer, wrapper = None, None, runner.envs[0]
        while wrapper is not inner:  # the time limit and the frame cache of the wrapper stack
            self.steps = getattr(wrapper, "_max_episode_steps", self.steps)
            self.renderer = getattr(wrapper, "renderer", self.renderer)
            wrapper = wrapper.env
        if self.steps is None or self.renderer is None:
            raise ValueError("the runner's environments are not pixel pendulums")

    def run(self, controller: Controller) -> np.ndarray:
        """Returns ``(copies, K)`` episode returns; ``controller`` sees ``copies·K`` rows,
        copy-major."""
        config, runner = self.runner.config, self.runner
        starts = []
        for env, seed in zip(runner.envs, runner.seeds, strict=True):
            env.reset(seed=seed)
            starts.append(np.array(env.unwrapped.state, dtype=np.float64))
        state = np.tile(np.stack(starts), (self.copies, 1))
        theta, speed = state[:, 0].copy(), state[:, 1].copy()
        first = np.stack([self.renderer.frame(float(angle)) for angle in theta])
        stack = np.repeat(first[:, None], config.frames, axis=1)
        returns = np.zeros(len(theta))
        for _ in range(self.steps // config.action_repeat):
            actions = np.asarray(controller(stack, np.stack([theta, speed], axis=1)))
            actions = actions.astype(np.float32).reshape(len(theta))
            torque = np.clip(np.clip(actions, -1.0, 1.0) * MAX_TORQUE, -self.max_torque,
                             self.max_torque)  # fmt: skip
            total = np.zeros(len(theta))
            for _ in range(config.action_repeat):
                theta, speed, reward = self._physics(theta, speed, torque)
                total += reward
            returns += total
            frames = np.stack([self.renderer.frame(float(angle)) for angle in theta])
            stack = np.concatenate([stack[:, 1:], frames[:, None]], axis=1)
        return returns.reshape(self.copies, len(runner.seeds))

    def _physics(self, theta, speed, torque):
        """One Pendulum-v1 step for arrays, in the float types of Gymnasium's scalar code."""
        g, m, length, dt = self.g, self.m, self.l, self.dt
        normalised = ((theta + np.pi) % (2 * np.pi)) - np.pi
        # Element by element: NumPy squares scalars with pow() and arrays with x·x, which differ
        # in the last bit now and then; Gymnasium squares scalars.
        rows = zip(normalised, speed, torque, strict=True)
        costs = np.array([n**2 + 0.1 * v**2 + 0.001 * (u**2) for n, v, u in rows])
        new_speed = speed + (3 * g / (2 * length) * np.sin(theta) + 3.0 / (m * length**2)
                             * torque) * dt  # fmt: skip
        new_speed = np.clip(new_speed, -self.max_speed, self.max_speed)
        return theta + new_speed * dt, new_speed, -costs


def record_episode(
    controller: Controller, seed: int, config: EnvConfig | None = None, size: int = 96
) -> tuple[np.ndarray, float]:
    """Run one episode and draw it in colour, torque arrow included, with Gymnasium's renderer.

    Returns:
        ``(T, size, size, 3)`` uint8 frames, one per decision (the first is the start state),
        and the episode return.
    """

    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    config = config or EnvConfig()
    env = make_pixel_pendulum(config.size, config.frames, config.action_repeat)
    drawer = gym.make("Pendulum-v1", render_mode="rgb_array").unwrapped
    drawer.screen_dim = size
    drawer.reset(seed=0)

    def draw(torque: float | None) -> np.ndarray:
        drawer.state = np.array(env.unwrapped.state, dtype=np.float64)
        drawer.last_u = torque
        return drawer.render().copy()

    observation, _ = env.reset(seed=seed)
    frames, total, done = [draw(None)], 0.0, False
    while not done:
        state = np.asarray(env.unwrapped.state)[None]
        action = np.asarray(controller(observation[None], state), dtype=np.float32).reshape(1)
        action = np.clip(action, -1.0, 1.0) * MAX_TORQUE
        observation, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        frames.append(draw(float(action[0])))
        done = terminated or truncated
    env.close()
    drawer.close()
    return np.stack(frames), total


def network_controller(
    act: Callable[[torch.Tensor], torch.Tensor], device: torch.device | str = "cpu"
) -> Controller:
    """Wrap ``act(observations uint8 tensor on device) -> actions tensor`` as a controller."""

    def controller(observations: np.ndarray, states: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return act(torch.as_tensor(observations, device=device)).float().cpu().numpy()

    return controller
