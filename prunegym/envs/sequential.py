"""AMC-style episodes: one pruning group per step, the model evaluated once at the end.

:class:`SequentialPruneEnv` wraps a :class:`~prunegym.envs.prune_env.PruneEnv` built with
``observation="features"``. An episode visits the groups from the input side to the output
side (by the ``depth`` feature, ties in group order); each step's action is the coefficient of
the group whose turn it is. Intermediate rewards are 0; the last step evaluates the whole
coefficient vector with the wrapped environment's ``step`` and returns its reward and info.

With ``hard_budget=True`` (the default) the action is moved, without evaluating, to the nearest
coefficient that keeps the target reachable (:meth:`SequentialPruneEnv.allowed`), judged by
exact sparsities: a coefficient is allowed when some completion of the groups after it lands
in the window. Two are tried: the later groups at one common coefficient, bisected over the
channel counts it can give onto the target (with one group left, that is its nearest value),
and the completion planned at the step before (so the coefficient it planned for this group
is always allowed). Every step thus keeps a completion that lands, and once one is found, the
episode ends in the window whatever the actions (tested with random actions at ±0.005 and
±0.01), as long as the target stays the one the episode was reset with. Until one is found,
the rule falls back to the extremes: the window's inner half must lie between what the later
groups reach all dense and all at 0.95 (with one group left: the coefficients nearest the
window), and the episode may miss. AMC enforces its budget by clipping the action in the same
spirit.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from prunegym.envs.features import STATIC_FEATURES, feature_observation, feature_space
from prunegym.envs.prune_env import PruneEnv
from prunegym.envs.sparsity_search import bisect_sparsity
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
        self._plan: np.ndarray | None = None  # a completion of the step before that lands

    @property
    def groups(self) -> list:
        return self.core.groups

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        _, info = self.core.reset(seed=seed, options=options)
        self._coefficients[:] = 0.0
        self._position = 0
        self._plan = None
        return self._get_obs(), info

    def step(self, action) -> tuple[dict, float, bool, bool, dict[str, Any]]:
        if self._position >= len(self.order):
            raise RuntimeError("the episode has ended: call reset()")
        raw = np.asarray(action)
        if raw.dtype.kind not in "iuf" or raw.shape != (1,):
            raise ValueError(
                f"action must be one real coefficient of shape (1,), got "
                f"{type(action).__name__} of shape {raw.shape} and dtype {raw.dtype}"
            )
        chosen = float(raw[0])
        if not (np.isfinite(chosen) and 0.0 <= chosen <= MAX_COEFFICIENT):
            raise ValueError(f"action {chosen} is not a coefficient in [0, {MAX_COEFFICIENT}]")
        group = int(self.order[self._position])
        if self.hard_budget:  # the nearest coefficient that keeps the target reachable
            allowed, completions = self._allowed_with_completions()
            nearest = int(np.argmin(np.abs(allowed - chosen)))
            self._coefficients[group] = float(allowed[nearest])
            self._plan = None if completions is None else completions[nearest]
            low, high = float(allowed.min()), float(allowed.max())
        else:
            self._coefficients[group] = chosen
            self._plan = None
            low, high = 0.0, MAX_COEFFICIENT
        self._position += 1
        if self._position < len(self.order):
            info = {"group": group, "action": chosen, "coefficient": self._coefficients[group]}
            info["allowed"] = (low, high)
            return self._get_obs(), 0.0, False, False, info
        # float64, as the projection counted them: in float32, 0.95 of 10 channels rounds to 9
        _, reward, _, _, info = self.core.step(self._coefficients)
        info.update(group=group, action=chosen, coefficient=self._coefficients[group])
        info["allowed"] = (low, high)
        return self._get_obs(), float(reward), True, False, info

    def _fractions(self, group: int) -> np.ndarray:
        """Every distinct coefficient of ``group``: ``k / n`` for ``k < n`` channels, up to 0.95."""
        channels = max(int(self.core.channels[group]), 1)
        return np.unique(np.clip(np.arange(channels) / channels, 0.0, MAX_COEFFICIENT))

    def allowed(self) -> np.ndarray:
        """The coefficients of the group whose turn it is that keep the target reachable (see
        the module docstring); where no completion is found, those the fallback allows: with
        two or more groups after it, those whose later extremes bracket the window, else (or
        if none does) those nearest to it."""
        return self._allowed_with_completions()[0]

    def _allowed_with_completions(self) -> tuple[np.ndarray, np.ndarray | None]:
        """``(allowed (A,), completions (A, m) or None)``: each allowed coefficient with a
        whole coefficient vector that lands in the window (None under the fallback rule)."""
        group = int(self.order[self._position])
        later = self.order[self._position + 1 :]
        candidates = self._fractions(group)
        rows = np.repeat(self._coefficients[None], len(candidates), axis=0)
        rows[:, group] = candidates
        target, tolerance = self.core.target, self.core.tolerance
        if len(later) == 0:
            completions = rows
        else:  # the later groups at one common coefficient, bisected onto the target (for
            # one group left: its value nearest the target, since each level is a count of it)
            levels = self._common_levels(later)

            def common(index: np.ndarray) -> np.ndarray:
                completed = rows.copy()
                level = levels[np.minimum(index.astype(np.int64), len(levels) - 1)]
                completed[:, later] = level[:, None]
                return completed

            edges = (np.zeros(len(rows)), np.full(len(rows), len(levels) - 1.0))
            steps = int(np.ceil(np.log2(len(levels)))) + 1  # to one level
            below, above = map(common, bisect_sparsity(self.core, common, *edges, target, steps))
            nearer = np.abs(self.core.sparsity_of(above) - target) < np.abs(
                self.core.sparsity_of(below) - target
            )
            completions = np.where(nearer[:, None], above, below)
            if self._plan is not None:  # what the step before planned for this group lands
                counts = self.core.pruned_counts(rows)[:, group]
                planned = counts == self.core.pruned_counts(self._plan)[group]
                completions[np.ix_(planned, later)] = self._plan[later]
        gap = np.abs(self.core.sparsity_of(completions) - target) - tolerance
        if (gap <= 0).any():
            return candidates[gap <= 0], completions[gap <= 0]
        if len(later) >= 2:  # nothing found: the later groups' extremes must bracket the window
            most, least = rows.copy(), rows.copy()
            most[:, later], least[:, later] = MAX_COEFFICIENT, 0.0
            short = (target - tolerance / 2) - self.core.sparsity_of(most)
            over = self.core.sparsity_of(least) - (target + tolerance / 2)
            gap = np.maximum(short, over)
            if (gap <= 0).any():
                return candidates[gap <= 0], None
        return candidates[gap == gap.min()], None

    def _common_levels(self, later: np.ndarray) -> np.ndarray:
        """One coefficient per pattern of channel counts that a common coefficient of the
        ``later`` groups can give, ascending: 0, 0.95, and the midpoints between the
        coefficients where some later group's count ``min(⌊c·n + 0.5⌋, n − 1)`` changes."""
        channels = np.maximum(self.core.channels[later], 1)
        changes = np.concatenate([(np.arange(n - 1) + 0.5) / n for n in channels])
        edges = np.unique(np.concatenate([[0.0, MAX_COEFFICIENT], changes]))
        edges = edges[edges <= MAX_COEFFICIENT]
        return np.unique(np.concatenate([[0.0], (edges[:-1] + edges[1:]) / 2, [MAX_COEFFICIENT]]))

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
