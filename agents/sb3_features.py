"""Stable-Baselines3 on the ``features`` observation, with weights that fit any network.

:class:`GroupSetExtractor` is an SB3 features extractor for the ``Dict`` observation of
:mod:`prunegym.envs.features`: one shared network reads every group's row, the rows are pooled
by mean and max, and the row of the group whose turn it is is kept apart. None of its weights
depend on the number of groups. In sequential episodes (``prunegym/PruneSequential-v0``,
AMC style, one group per step) the action is one coefficient, so no weight of the whole SB3
policy does either: a policy trained on one network can act on another
(:func:`transfer_policy`)::

    model = PPO("MultiInputPolicy", sequential_env("mnist-ae"),
                policy_kwargs={"features_extractor_class": GroupSetExtractor})
    model.learn(20_000)
    other = transfer_policy(model, sequential_env("mnist-convnet"))

In one-shot episodes (``prunegym/PruneFeatures-v0``) the action has one entry per group, so
the action head is the network's own; the extractor still works there.
"""

from __future__ import annotations

import io
import numbers

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
    is, as in one-shot episodes).

    Args:
        observation_space: The ``features`` ``Dict`` space (``"groups"`` ``(m, F)``,
            ``"context"`` ``(C,)``, both ``Box``) of any number of groups ``m``.
        hidden: Width of ``φ``.

    Shapes: ``{"groups": (B, m, F), "context": (B, C)}`` float32 → ``(B, 3·hidden + C)``, on
    the policy's device.
    """

    def __init__(self, observation_space: spaces.Space, hidden: int = 64) -> None:
        expected = feature_space(1)
        width = expected["groups"].shape[1]
        context = expected["context"].shape[0]
        dictionary = isinstance(observation_space, spaces.Dict)
        entries = observation_space.spaces if dictionary else {}
        groups = entries.get("groups")
        fits = (
            set(entries) == {"groups", "context"}
            and all(isinstance(entry, spaces.Box) for entry in entries.values())
            and len(groups.shape) == 2 and groups.shape[0] >= 1 and groups.shape[1] == width
            and entries["context"].shape == (context,)
        )  # fmt: skip
        if not fits:
            raise ValueError(
                "GroupSetExtractor reads the features observation (a Dict of Boxes 'groups' "
                f"(m, {width}) and 'context' ({context},)), got {_describe(observation_space)}"
            )
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
        return torch.cat([current, encoded.mean(dim=1), encoded.amax(dim=1), context], dim=-1)


def _describe(space: spaces.Space) -> str:
    """A one-line description of ``space``: its kind and shape, per entry for a ``Dict``."""
    if isinstance(space, spaces.Dict):
        return "Dict(" + ", ".join(f"{k}: {_describe(v)}" for k, v in space.spaces.items()) + ")"
    return f"{type(space).__name__}{getattr(space, 'shape', None) or ''}"


def sequential_env(task, target_range=(0.1, 0.7), **env_kwargs) -> DrawnTarget:
    """Sequential episodes of ``task`` for SB3: a :class:`SequentialPruneEnv` (``env_kwargs``
    go to it) whose action is rescaled to ``[−1, 1]``, with a target drawn per episode from
    ``target_range`` (:class:`DrawnTarget`; ``(ρ, ρ)`` for a fixed target ``ρ``)."""
    low, high = check_target_range(target_range)  # before the task is built
    if "target" in env_kwargs:
        raise ValueError(
            "sequential_env draws the target per episode from target_range; for a fixed "
            "target ρ pass target_range=(ρ, ρ) instead of target="
        )
    return DrawnTarget(UnitActions(SequentialPruneEnv(task, **env_kwargs)), low, high)


def transfer_policy(model, env):
    """``model`` (an SB3 algorithm) for ``env``: the same policy weights, hyper-parameters,
    optimiser state and logger, with ``env``'s observation space.

    ``env`` may prune another network, with another number of groups, as long as no weight
    of the policy depends on it: a :class:`GroupSetExtractor` and a one-coefficient action,
    as :func:`sequential_env` gives. The new model can :meth:`predict` on ``env`` and train on
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
            f"{env.action_space}; build both envs with sequential_env(task, ...) (one "
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
