"""AMC-style episodes: one pruning group per step, the model evaluated once at the end.

:class:`SequentialPruneEnv` wraps a :class:`~prunegym.envs.prune_env.PruneEnv` built with
``observation="features"``. An episode visits the groups from the input side to the output
side (by the ``depth`` feature, ties in group order); each step's action is the coefficient of
the group whose turn it is. Intermediate rewards are 0; the last step evaluates the whole
coefficient vector with the wrapped environment's ``step`` and returns its reward and info.

With ``hard_budget=True`` (the default) the action is moved, without evaluating, to the nearest
coefficient that keeps the target reachable (:meth:`SequentialPruneEnv.allowed`): with two or
more groups after the current one, the window's inner half must lie between what those later
groups could reach at their extremes; with one after it, some coefficient of that one must
land in the window; for the last group, the sparsity must. The two-or-more test looks only at
the extremes, so a network whose later groups move the sparsity in steps wider than the window
can still miss it: on the toy task at target 0.25 with ``tolerance=0.005``, the actions 0.43,
0.13, 0.38, 0.19, 0.25 end at 0.2552 although the window was reachable after the first two
(tested). At the default tolerance, random actions landed in the window every time on the toy
task and the autoencoder (tests). AMC enforces its budget by clipping the action in the same spirit.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from prunegym.envs.features import STATIC_FEATURES, feature_observation, feature_space
from prunegym.envs.prune_env import PruneEnv
from prunegym.pruning.channel.pruner import MAX_COEFFICIENT


def check_hard_budget(value) -> bool:
    """``value`` as a bool; a one-line ``ValueError`` unless it is ``True`` or ``False``."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"hard_budget must be True or False, got {value!r}")
    return bool(value)


class SequentialPruneEnv(gym.Env):
    """One group per step (see the module docstring).

    Args:
        task: A :class:`prunegym.Task` or task name.
        hard_budget: Project each action so that the target stays reachable.
        **env_kwargs: :class:`PruneEnv` arguments (``target``, ``tolerance``, ``criterion``,
            ``compensation``, ``device``, ...); the observation is always ``features``.

    Observation: the ``features`` ``Dict`` of the groups, with each group's coefficient so
    far, whether it is decided, and which group is next; the context adds the position.
    Action: ``Box(0, 0.95, (1,), float32)``, the next group's coefficient. Bad actions raise
    ``ValueError`` and change nothing.
    """

    metadata = {"render_modes": []}

    def __init__(self, task, hard_budget: bool = True, **env_kwargs) -> None:
        if env_kwargs.pop("observation", "features") != "features":
            raise ValueError("SequentialPruneEnv observes features only")
        self.hard_budget = check_hard_budget(hard_budget)
        self.core = PruneEnv(task, observation="features", **env_kwargs)
        depth = self.core.group_features[:, STATIC_FEATURES.index("depth")]
        #: The order in which groups are decided: indices into ``core.groups``.
        self.order = np.argsort(depth, kind="stable")
        size = len(self.core.groups)
        self.action_space = spaces.Box(0.0, MAX_COEFFICIENT, (1,), np.float32)
        self.observation_space = feature_space(size)
        self._coefficients = np.zeros(size, dtype=np.float64)
        self._position = 0

    @property
    def groups(self) -> list:
        return self.core.groups

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        _, info = self.core.reset(seed=seed, options=options)
        self._coefficients[:] = 0.0
        self._position = 0
        return self._get_obs(), info

    def step(self, action) -> tuple[dict, float, bool, bool, dict[str, Any]]:
        if self._position >= len(self.order):
            raise RuntimeError("the episode has ended: call reset()")
        raw = np.asarray(action)
        if raw.dtype.kind not in "iuf" or raw.shape != (1,):
            raise ValueError(f"action must be one real coefficient of shape (1,), got {action!r}")
        chosen = float(raw[0])
        if not (np.isfinite(chosen) and 0.0 <= chosen <= MAX_COEFFICIENT):
            raise ValueError(f"action {chosen} is not a coefficient in [0, {MAX_COEFFICIENT}]")
        group = int(self.order[self._position])
        if self.hard_budget:  # the nearest coefficient that keeps the target reachable
            allowed = self.allowed()
            self._coefficients[group] = float(allowed[np.argmin(np.abs(allowed - chosen))])
            low, high = float(allowed.min()), float(allowed.max())
        else:
            self._coefficients[group] = chosen
            low, high = 0.0, MAX_COEFFICIENT
        self._position += 1
        if self._position < len(self.order):
            info = {"group": group, "action": chosen, "coefficient": self._coefficients[group]}
            info["allowed"] = (low, high)
            return self._get_obs(), 0.0, False, False, info
        _, reward, _, _, info = self.core.step(self._coefficients.astype(np.float32))
        info.update(group=group, action=chosen, coefficient=self._coefficients[group])
        info["allowed"] = (low, high)
        return self._get_obs(), float(reward), True, False, info

    def _fractions(self, group: int) -> np.ndarray:
        """Every distinct coefficient of ``group``: ``k / n`` for ``k`` channels, up to 0.95."""
        channels = max(int(self.core.channels[group]), 1)
        return np.unique(np.clip(np.arange(channels + 1) / channels, 0.0, MAX_COEFFICIENT))

    def allowed(self) -> np.ndarray:
        """The coefficients of the group whose turn it is that keep the target reachable,
        from exact sparsities (nothing is evaluated). With two or more groups after it: those
        from which ``target − ε/2`` is reached if every later group goes to 0.95 and
        ``target + ε/2`` is not passed if every later group stays dense. With one group after
        it: those for which some coefficient of that group lands in the window. For the last
        group: those in the window. Where none qualifies, the nearest to the window."""
        group = int(self.order[self._position])
        later = self.order[self._position + 1 :]
        candidates = self._fractions(group)
        rows = np.repeat(self._coefficients[None], len(candidates), axis=0)
        rows[:, group] = candidates
        target, tolerance = self.core.target, self.core.tolerance
        if len(later) == 0:
            gap = np.abs(self.core.sparsity_of(rows) - target) - tolerance
        elif len(later) == 1:
            last = self._fractions(int(later[0]))
            grid = np.repeat(rows, len(last), axis=0)
            grid[:, later[0]] = np.tile(last, len(candidates))
            distance = np.abs(self.core.sparsity_of(grid) - target).reshape(len(candidates), -1)
            gap = distance.min(axis=1) - tolerance  # the best completion of each candidate
        else:
            most, least = rows.copy(), rows
            most[:, later] = MAX_COEFFICIENT
            least[:, later] = 0.0
            short = (target - tolerance / 2) - self.core.sparsity_of(most)
            over = self.core.sparsity_of(least) - (target + tolerance / 2)
            gap = np.maximum(short, over)
        fits = gap <= 0
        return candidates[fits] if fits.any() else candidates[gap == gap.min()]

    def _get_obs(self) -> dict[str, np.ndarray]:
        decided = np.zeros(len(self.order), dtype=np.float32)
        decided[self.order[: self._position]] = 1.0
        current = int(self.order[self._position]) if self._position < len(self.order) else None
        context = self.core.feature_context(self._coefficients)
        context["position"] = self._position / len(self.order)
        return feature_observation(
            self.core.group_features, self._coefficients.astype(np.float32), context,
            decided, current,
        )  # fmt: skip
