"""The pixel pendulum: Gymnasium's Pendulum-v1, seen through its own renderer as small frames.

The wrapper stack (``make_pixel_pendulum``), from the inside out:

1. ``gym.make("Pendulum-v1")``: Gymnasium's dynamics, reward and 200-step time limit.
2. :class:`ActionRepeat`: each decision is applied for ``repeat`` simulator steps; rewards add.
3. :class:`PendulumPixels`: the observation becomes a grayscale ``size × size`` frame of the
   current angle, drawn by Gymnasium's Pendulum renderer at ``size · supersample`` pixels and
   area-averaged down.
4. ``gymnasium.wrappers.FrameStackObservation``: the last ``frames`` frames, so the angular
   velocity is observable.

A frame is a pure function of the angle (the renderer's torque arrow is not drawn), so frames
are cached by angle quantised to ``bins`` steps per turn; ``cache=False`` renders live.
"""

from __future__ import annotations

import math
import os

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import FrameStackObservation

FRAME_SIZE = 28
FRAMES = 3
ACTION_REPEAT = 2
SUPERSAMPLE = 3
BINS = 4096
GRAY = np.array([0.299, 0.587, 0.114])


class PendulumRenderer:
    """Draws the pendulum at any angle with Gymnasium's own renderer; grayscale, downscaled.

    Args:
        size: Output frame side in pixels.
        supersample: The renderer draws at ``size · supersample`` and frames are block means.
        bins: Angle quantisation of the cache (steps per full turn); 0 disables the cache.
    """

    def __init__(self, size: int = FRAME_SIZE, supersample: int = SUPERSAMPLE, bins: int = BINS):
        self.size, self.supersample, self.bins = size, supersample, bins
        self._drawer = self._new_drawer()
        self._cache: dict[int, np.ndarray] = {}

    def _new_drawer(self):
        os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")  # headless, in any process
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        drawer = gym.make("Pendulum-v1", render_mode="rgb_array").unwrapped
        drawer.screen_dim = self.size * self.supersample
        drawer.reset(seed=0)
        return drawer

    def __getstate__(self) -> dict:
        """Copies and pickles leave the pygame drawer behind (it holds a clock that cannot be
        copied) and draw with a new one."""
        return {key: value for key, value in self.__dict__.items() if key != "_drawer"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._drawer = self._new_drawer()

    def live(self, angle: float) -> np.ndarray:
        """``(size, size)`` uint8 frame of ``angle`` (rad, 0 = upright), rendered now."""
        self._drawer.state = np.array([angle, 0.0])
        self._drawer.last_u = None  # no torque arrow: the frame depends on the angle only
        rgb = self._drawer.render().astype(np.float64)
        gray = rgb @ GRAY
        k = self.supersample
        blocks = gray.reshape(self.size, k, self.size, k).mean(axis=(1, 3))
        return np.clip(np.rint(blocks), 0, 255).astype(np.uint8)

    def frame(self, angle: float) -> np.ndarray:
        """``(size, size)`` uint8 frame, from the cache keyed by the quantised angle."""
        if not self.bins:
            return self.live(angle)
        key = int(round((angle % (2 * math.pi)) / (2 * math.pi) * self.bins)) % self.bins
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = self.live(key * 2 * math.pi / self.bins)
        return cached

    def close(self) -> None:
        self._drawer.close()


_SHARED: dict[tuple[int, int, int], PendulumRenderer] = {}


def shared_renderer(size: int, supersample: int, bins: int) -> PendulumRenderer:
    """One renderer (and cache) per configuration, shared by every env in the process."""
    key = (size, supersample, bins)
    if key not in _SHARED:
        _SHARED[key] = PendulumRenderer(size, supersample, bins)
    return _SHARED[key]


class ActionRepeat(gym.Wrapper):
    """Apply each action for ``repeat`` steps of the inner env; the rewards are summed."""

    def __init__(self, env: gym.Env, repeat: int = ACTION_REPEAT) -> None:
        super().__init__(env)
        if repeat < 1:
            raise ValueError(f"action repeat must be >= 1, got {repeat}")
        self.repeat = repeat

    def step(self, action):
        total = 0.0
        for _ in range(self.repeat):
            observation, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return observation, total, terminated, truncated, info


class PendulumPixels(gym.ObservationWrapper):
    """Replace the state observation by a ``(size, size)`` uint8 frame of the pendulum."""

    def __init__(
        self,
        env: gym.Env,
        size: int = FRAME_SIZE,
        supersample: int = SUPERSAMPLE,
        cache: bool = True,
    ) -> None:
        super().__init__(env)
        self.renderer = shared_renderer(size, supersample, BINS if cache else 0)
        self.observation_space = spaces.Box(0, 255, (size, size), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return self.renderer.frame(float(self.env.unwrapped.state[0]))


def make_pixel_pendulum(
    size: int = FRAME_SIZE,
    frames: int = FRAMES,
    action_repeat: int = ACTION_REPEAT,
    cache: bool = True,
    max_episode_steps: int = 200,
    render_mode: str | None = None,
) -> gym.Env:
    """The pixel pendulum: observation ``(frames, size, size)`` uint8, action ``(1,)`` torque
    in [−2, 2], reward Pendulum-v1's summed over the repeat, ``200 / action_repeat``
    decisions per episode. ``render_mode`` is Pendulum-v1's (``"rgb_array"``: a 500×500 RGB
    frame; ``"human"``: a window)."""
    env = gym.make("Pendulum-v1", max_episode_steps=max_episode_steps, render_mode=render_mode)
    env = ActionRepeat(env, action_repeat)
    env = PendulumPixels(env, size, cache=cache)
    return FrameStackObservation(env, frames)
