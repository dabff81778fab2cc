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

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.wrappers import RescaleAction
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from prunegym.agents.sb3 import DrawnTarget
from prunegym.envs.features import CONTEXT_FEATURES, DYNAMIC_FEATURES, STATIC_FEATURES
from prunegym.envs.sequential import SequentialPruneEnv


class GroupSetExtractor(BaseFeaturesExtractor):
    """``[φ(row of the current group), mean_i φ(row_i), max_i φ(row_i), context]``.

    ``φ([row_i, context])`` is a two-layer tanh network shared by every group; the current
    group is the one whose ``current`` column is 1 (sequential episodes; zeros where no group
    is, as in one-shot episodes).

    Args:
        observation_space: The ``features`` ``Dict`` space (``"groups"`` ``(m, F)``,
            ``"context"`` ``(C,)``) of any number of groups ``m``.
        hidden: Width of ``φ``.

    Shapes: ``{"groups": (B, m, F), "context": (B, C)}`` float32 → ``(B, 3·hidden + C)``, on
    the policy's device.
    """

    def __init__(self, observation_space: spaces.Space, hidden: int = 64) -> None:
        width = len(STATIC_FEATURES) + len(DYNAMIC_FEATURES)
        shapes = {
            key: getattr(space, "shape", None)
            for key, space in getattr(observation_space, "spaces", {}).items()
        }
        wanted = {"groups": (width,), "context": (len(CONTEXT_FEATURES),)}
        if set(shapes) != set(wanted) or not all(
            shape is not None and shape[-1:] == wanted[key] for key, shape in shapes.items()
        ):
            raise ValueError(
                "GroupSetExtractor reads the features observation (a Dict of 'groups' "
                f"(m, {width}) and 'context' ({len(CONTEXT_FEATURES)},)), got {observation_space}"
            )
        if not isinstance(hidden, int) or isinstance(hidden, bool) or hidden < 1:
            raise ValueError(f"GroupSetExtractor hidden must be an integer >= 1, got {hidden!r}")
        context = len(CONTEXT_FEATURES)
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


def sequential_env(task, target_range=(0.1, 0.7), **env_kwargs) -> DrawnTarget:
    """Sequential episodes of ``task`` for SB3: a :class:`SequentialPruneEnv` (``env_kwargs``
    go to it) whose action is rescaled to ``[−1, 1]``, with a target drawn per episode from
    ``target_range`` (:class:`DrawnTarget`)."""
    core = SequentialPruneEnv(task, **env_kwargs)
    ones = np.ones(1, dtype=np.float32)
    return DrawnTarget(RescaleAction(core, -ones, ones), *target_range)


def transfer_policy(model, env):
    """A new model of ``model``'s SB3 algorithm for ``env``, holding ``model``'s policy weights.

    ``env`` may prune another network, with another number of groups, as long as no weight
    of the policy depends on it: a :class:`GroupSetExtractor` and a one-coefficient action
    (sequential episodes). The new model can :meth:`predict` on ``env`` and train on.

    Raises:
        ValueError: in one line, naming the weights whose shapes differ.
    """
    fresh = type(model)(
        model.policy_class, env, policy_kwargs=model.policy_kwargs, device=model.device,
        seed=model.seed, verbose=0,
    )  # fmt: skip
    trained, wanted = model.policy.state_dict(), fresh.policy.state_dict()
    differ = [
        name for name, value in wanted.items()
        if name not in trained or trained[name].shape != value.shape
    ]  # fmt: skip
    if differ or set(trained) != set(wanted):
        raise ValueError(
            f"cannot transfer the policy: {', '.join(differ[:3]) or 'its layers'} differ in "
            "shape on this env; use GroupSetExtractor on a sequential env "
            "(prunegym/PruneSequential-v0), whose action is one coefficient"
        )
    fresh.policy.load_state_dict(trained)
    return fresh
