"""Run K pixel-pendulum episodes together, batching the controller's calls.

A controller is ``controller(observations (K, frames, size, size) uint8, states (K, 2)) ->
actions (K, 1)`` in [−1, 1] (scaled to ±2 N·m). ``states`` holds each pendulum's true angle
and angular velocity (only the classical controller reads it).
"""

from __future__ import annotations

from collections.abc import Callable

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

    def run(self, controller: Controller) -> np.ndarray:
        """Returns ``(K,)`` episode returns (sum of Pendulum-v1 rewards over 200 steps)."""
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


def record_episode(
    controller: Controller, seed: int, config: EnvConfig | None = None, size: int = 96
) -> tuple[np.ndarray, float]:
    """Run one episode and draw it in colour, torque arrow included, with Gymnasium's renderer.

    Returns:
        ``(T, size, size, 3)`` uint8 frames, one per decision (the first is the start state),
        and the episode return.
    """
    import os

    import gymnasium as gym

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


def network_controller(act: Callable[[torch.Tensor], torch.Tensor]) -> Controller:
    """Wrap ``act(observations uint8 tensor) -> actions tensor`` as a controller."""

    def controller(observations: np.ndarray, states: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return act(torch.from_numpy(observations)).numpy()

    return controller
