"""Stable-Baselines3 on the ``features`` observation, with weights that fit any network.

:class:`GroupSetExtractor` is an SB3 features extractor for the ``Dict`` observation of
:mod:`prunegym.envs.features`: one shared network reads every group's row, the rows are pooled
by mean and max, and the row of the group whose turn it is is kept apart. None of its weights
depend on the number of groups. In sequential episodes (``prunegym/PruneSequential-v0``,
AMC style, one group per step) the action is one coefficient, so no weight of the whole SB3
policy does either: a policy trained on one network can act on another
(:func:`transfer_policy`)::

    model = PPO("MultiInputPolicy", sb3_sequential_env("mnist-ae"),
                policy_kwargs={"features_extractor_class": GroupSetExtractor})
    model.learn(20_000)
    other = transfer_policy(model, sb3_sequential_env("mnist-convnet"))

In one-shot episodes (``prunegym/PruneFeatures-v0``) the action has one entry per group, so
the action head is the network's own; the extractor still works there.
"""

from __future__ import annotations

import io
import numbers

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from prunegym.agents.sb3 import DrawnTarget, UnitActions, check_target_range
from prunegym.envs.features import DYNAMIC_FEATURES, STATIC_FEATURES, feature_space
from prunegym.envs.sequential import SequentialPruneEnv


class GroupSetExtractor(BaseFeaturesExtractor):
    """``[φ(row of the current group), mean_i φ(row_i), max_i φ(row_i), context]``.

    ``φ([row_i, context])`` is a two-layer tanh network shared by every group; the current
    group is the one whose ``current`` column is 1 (sequential episodes; zeros where no group
    is, as in one-shot episodes). With a ``"present"`` entry (:class:`TaskMixture`), the pools
    leave out the padding rows it marks 0.

    Args:
        observation_space: The ``features`` ``Dict`` space (``"groups"`` ``(m, F)``,
            ``"context"`` ``(C,)``, both ``Box``) of any number of groups ``m``.
        hidden: Width of ``φ``.

    Shapes: ``{"groups": (B, m, F), "context": (B, C)[, "present": (B, m)]}`` float32 →
    ``(B, 3·hidden + C)``, on the policy's device.
    """

    def __init__(self, observation_space: spaces.Space, hidden: int = 64) -> None:
        width, context = check_features_space(observation_space, "GroupSetExtractor")
        if isinstance(hidden, bool) or not isinstance(hidden, numbers.Integral) or hidden < 1:
            raise ValueError(f"GroupSetExtractor hidden must be an integer >= 1, got {hidden!r}")
        hidden = int(hidden)
        super().__init__(observation_space, features_dim=3 * hidden + context)
        self.encode = nn.Sequential(
            nn.Linear(width + context, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh()
        )
        self.current = len(STATIC_FEATURES) + DYNAMIC_FEATURES.index("current")

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        groups, context = observations["groups"], observations["context"]
        spread = context[:, None, :].expand(-1, groups.shape[1], -1)
        encoded = self.encode(torch.cat([groups, spread], dim=-1))
        current = (groups[..., self.current, None] * encoded).sum(dim=1)
        if "present" not in observations:
            return torch.cat([current, encoded.mean(dim=1), encoded.amax(dim=1), context], dim=-1)
        present = observations["present"][..., None] > 0.5  # (B, m, 1): padding rows are False
        mean = (encoded * present).sum(dim=1) / present.sum(dim=1).clamp(min=1)
        largest = encoded.masked_fill(~present, -1.0).amax(dim=1)  # tanh's floor: no -inf
        return torch.cat([current, mean, largest, context], dim=-1)


def check_features_space(space: spaces.Space, owner: str) -> tuple[int, int]:
    """``(F, C)`` of a features observation space (``"groups"`` ``(m, F)``, ``"context"``
    ``(C,)``, optionally ``"present"`` ``(m,)``, all ``Box``); otherwise a one-line
    ``ValueError`` naming ``owner``."""
    expected = feature_space(1)
    width, context = expected["groups"].shape[1], expected["context"].shape[0]
    entries = space.spaces if isinstance(space, spaces.Dict) else {}
    groups, present = entries.get("groups"), entries.get("present")
    fits = (
        set(entries) - {"present"} == {"groups", "context"}
        and all(isinstance(entry, spaces.Box) for entry in entries.values())
        and len(groups.shape) == 2 and groups.shape[0] >= 1 and groups.shape[1] == width
        and entries["context"].shape == (context,)
        and (present is None or present.shape == groups.shape[:1])
    )  # fmt: skip
    if not fits:
        raise ValueError(
            f"{owner} reads the features observation (a Dict of Boxes 'groups' (m, {width}) "
            f"and 'context' ({context},), and optionally 'present' (m,)), got {_describe(space)}"
        )
    return width, context


def _describe(space: spaces.Space) -> str:
    """A one-line description of ``space``: its kind and shape, per entry for a ``Dict``."""
    if isinstance(space, spaces.Dict):
        return "Dict(" + ", ".join(f"{k}: {_describe(v)}" for k, v in space.spaces.items()) + ")"
    return f"{type(space).__name__}{getattr(space, 'shape', None) or ''}"


def sb3_sequential_env(task, target_range=(0.1, 0.7), **env_kwargs) -> DrawnTarget:
    """Sequential episodes of ``task`` for SB3: a :class:`SequentialPruneEnv` (``env_kwargs``
    go to it) whose action is rescaled to ``[−1, 1]``, with a target drawn per episode from
    ``target_range`` (:class:`DrawnTarget`; ``(ρ, ρ)`` for a fixed target ``ρ``)."""
    low, high = check_target_range(target_range)  # before the task is built
    if "target" in env_kwargs:
        raise ValueError(
            "sb3_sequential_env draws the target per episode from target_range; for a fixed "
            "target ρ pass target_range=(ρ, ρ) instead of target="
        )
    return DrawnTarget(UnitActions(SequentialPruneEnv(task, **env_kwargs)), low, high)


class TaskMixture(gym.Env):
    """Sequential episodes on several networks for one SB3 model: each reset picks one of
    ``envs`` uniformly at random (``reset(options={"task": i})`` picks ``envs[i]``), and every
    observation is padded to the largest number of groups among them.

    Args:
        envs: Environments with the features observation (``feature_space(m)``) and one
            action space, e.g. from :func:`sb3_sequential_env` (each draws its own targets).

    Observation: ``{"groups": (M, F), "context": (C,), "present": (M,)}`` float32, ``M`` the
    largest number of groups; the rows past the picked network's are 0 and ``present`` marks
    the real ones (:class:`GroupSetExtractor` pools only those). ``info["task"]``: the index
    of the picked environment. ``reset(seed=s)`` seeds the picks and, at its next reset, each
    environment, with independent streams spawned from ``s``. A reset the picked environment
    refuses changes nothing: the mixture stays on its current episode.
    """

    metadata = {"render_modes": []}

    def __init__(self, envs) -> None:
        self.envs = list(envs) if not isinstance(envs, (str, gym.Env)) else [envs]
        if not self.envs or not all(isinstance(env, gym.Env) for env in self.envs):
            raise ValueError(f"TaskMixture takes a list of environments, got {envs!r}")
        for env in self.envs:
            check_features_space(env.observation_space, "TaskMixture")
            rows = env.observation_space["groups"].shape[0]
            if env.observation_space != feature_space(rows):
                raise ValueError(
                    "TaskMixture takes single networks' features observations (feature_space), "
                    f"got {_describe(env.observation_space)}"
                )
            if env.action_space != self.envs[0].action_space:
                raise ValueError(
                    f"TaskMixture needs one action space, got {self.envs[0].action_space} and "
                    f"{env.action_space}; build every env with sb3_sequential_env"
                )
        self.sizes = [env.observation_space["groups"].shape[0] for env in self.envs]
        padded = feature_space(max(self.sizes))
        present = spaces.Box(0.0, 1.0, (max(self.sizes),), np.float32)
        self.observation_space = spaces.Dict({**padded.spaces, "present": present})
        self.action_space = self.envs[0].action_space
        self.task = 0
        self._seeds: list[int | None] = [None] * len(self.envs)  # for each env's next reset

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        options = dict(options or {})
        task = options.pop("task", None)
        if task is not None and (
            isinstance(task, bool) or not isinstance(task, (int, np.integer))
            or not 0 <= task < len(self.envs)
        ):  # fmt: skip
            raise ValueError(f"task must be an index below {len(self.envs)}, got {task!r}")
        seeds = self._seeds
        if seed is not None:
            streams = [int(s.generate_state(1)[0]) for s in
                       np.random.SeedSequence(seed).spawn(len(self.envs) + 1)]  # fmt: skip
            picks, seeds = gym.utils.seeding.np_random(streams[0])[0], streams[1:]
        else:
            picks = self.np_random
        state = picks.bit_generator.state
        chosen = int(picks.integers(len(self.envs))) if task is None else int(task)
        try:
            observation, info = self.envs[chosen].reset(seed=seeds[chosen], options=options)
        except Exception:  # refused (e.g. a bad target): nothing changes
            picks.bit_generator.state = state
            raise
        self.np_random, self._seeds = picks, list(seeds)
        self._seeds[chosen] = None
        self.task = chosen
        return self._padded(observation), {**info, "task": chosen}

    def step(self, action):
        observation, reward, terminated, truncated, info = self.envs[self.task].step(action)
        return self._padded(observation), reward, terminated, truncated, {**info, "task": self.task}

    def _padded(self, observation: dict) -> dict[str, np.ndarray]:
        size, rows = self.observation_space["present"].shape[0], len(observation["groups"])
        groups = np.zeros((size, observation["groups"].shape[1]), dtype=np.float32)
        groups[:rows] = observation["groups"]
        present = np.zeros(size, dtype=np.float32)
        present[:rows] = 1.0
        context = np.asarray(observation["context"], dtype=np.float32)
        return {"groups": groups, "context": context, "present": present}


def transfer_policy(model, env):
    """``model`` (an SB3 algorithm) for ``env``: the same policy weights, hyper-parameters,
    optimiser state and logger, with ``env``'s observation space.

    ``env`` may prune another network, with another number of groups, as long as no weight
    of the policy depends on it: a :class:`GroupSetExtractor` and a one-coefficient action,
    as :func:`sb3_sequential_env` gives. The new model can :meth:`predict` on ``env`` and train on
    (a replay buffer starts empty). As SB3's ``load`` does, a model with a seed seeds the
    global random generators (python, numpy, torch) and ``env`` with it.

    Raises:
        ValueError: in one line, for another action space (e.g. one-shot episodes, or
            ``PruneSequential-v0`` without the rescaling to ``[−1, 1]``), a model trained under
            ``VecNormalize`` with normalised observations (their statistics have one row per
            group of the old network), or weights whose shapes depend on the network.
    """
    normaliser = model.get_vec_normalize_env()
    if normaliser is not None and normaliser.norm_obs:
        raise ValueError(
            "cannot transfer a model trained under VecNormalize with norm_obs=True: its "
            "observation statistics have one row per group of the network it trained on"
        )
    if env.action_space != model.action_space:
        raise ValueError(
            f"cannot transfer the policy: it acts in {model.action_space}, this env in "
            f"{env.action_space}; build both envs with sb3_sequential_env(task, ...) (one "
            "coefficient per step, in [-1, 1])"
        )
    saved = io.BytesIO()
    model.save(saved)  # SB3 leaves the replay buffer out
    saved.seek(0)
    spaces_of_env = {"observation_space": env.observation_space, "action_space": env.action_space}
    try:
        fresh = type(model).load(saved, env=env, device=model.device, custom_objects=spaces_of_env)
    except RuntimeError as error:
        if "size mismatch" not in str(error):
            raise
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        raise ValueError(
            f"cannot transfer the policy, whose weights depend on the number of groups "
            f"(use GroupSetExtractor): {lines[-1]}"  # load_state_dict: the first mismatch
        ) from None
    if model._custom_logger:  # SB3 does not save a logger set with set_logger
        fresh.set_logger(model.logger)
    return fresh
