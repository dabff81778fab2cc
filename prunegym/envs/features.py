"""Per-group features: a description of each pruning group that does not depend on the network.

A learned policy that reads one fixed-length row per group (and pools over the rows) can serve
networks with any number of groups. The rows say what a group is and how its channels rank,
in units that mean the same on every network: shares of the whole model, fractions of depth,
score distributions normalised by their own mean.

Static columns (:data:`STATIC_FEATURES`, computed once per environment, float32):

- ``log_channels``: ``log2(n_i) / 12`` (4,096 channels → 1);
- ``parameter_share``: ``s_i / ‖θ‖₀``, the parameters removed if every channel went;
- ``mac_share``: the multiply-adds per sample removed when the group is pruned as far as it
  can be (every channel but one: no group is cut whole), over the dense count (0 where the
  task's model has no counted layer, or the group has one channel);
- ``coupling``: 1 for a coupling group, 0 for a component group;
- ``depth``: mean position of the group's layers among the model's parameterised modules,
  in [0, 1];
- ``components``: components the group touches over all components that any group touches;
- ``score_spread``: std/mean of the criterion's channel scores;
- ``score_min``: min/mean of them;
- ``score_mass_25``, ``score_mass_50``, ``score_mass_75``: share of the total score held by
  the lowest 25/50/75 % of channels (with ``compensated`` or ``lsq`` ranking, the error left
  after compensation; low means cheap to remove);
- ``norm_spread``: std/mean of the per-channel L2 norms.

Dynamic columns (:data:`DYNAMIC_FEATURES`): the group's coefficient now, whether it has been
decided (sequential episodes), and whether it is the group to decide now.

Context (:data:`CONTEXT_FEATURES`): target, tolerance, exact sparsity now, budget left
(target − sparsity), the largest sparsity reachable, and in sequential episodes the position
(decided groups over all groups).
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces

from prunegym.pruning.channel.importance import group_channel_norms

STATIC_FEATURES = (
    "log_channels", "parameter_share", "mac_share", "coupling", "depth", "components",
    "score_spread", "score_min", "score_mass_25", "score_mass_50", "score_mass_75",
    "norm_spread",
)  # fmt: skip
DYNAMIC_FEATURES = ("coefficient", "decided", "current")
CONTEXT_FEATURES = ("target", "tolerance", "sparsity", "budget_left", "max_sparsity", "position")


# std/mean columns are clipped here; the others lie in [0, 1] (log_channels up to 4,096 channels)
SPREAD_LIMIT = 10.0


def feature_space(groups: int) -> spaces.Dict:
    """The ``Dict`` observation space of ``groups`` groups: ``"groups"`` ``(m, F)`` in
    ``[0, 10]`` and ``"context"`` ``(C,)`` in ``[−1, 1]`` (budget left may be negative),
    float32."""
    width = len(STATIC_FEATURES) + len(DYNAMIC_FEATURES)
    return spaces.Dict(
        {
            "groups": spaces.Box(0.0, SPREAD_LIMIT, (groups, width), np.float32),
            "context": spaces.Box(-1.0, 1.0, (len(CONTEXT_FEATURES),), np.float32),
        }
    )


def _score_columns(scores: torch.Tensor) -> list[float]:
    """spread, min and the 25/50/75 % low-end mass of one group's scores (mean-normalised)."""
    values = np.sort(np.abs(scores.double().numpy()))
    total = values.sum()
    if len(values) == 0 or total <= 0:
        return [0.0, 1.0, 0.25, 0.5, 0.75]  # no information: as if uniform
    mean = total / len(values)
    cumulative = np.cumsum(values) / total
    mass = [float(cumulative[max(int(round(q * len(values))) - 1, 0)]) for q in (0.25, 0.5, 0.75)]
    spread = min(float(values.std() / mean), SPREAD_LIMIT)
    return [spread, float(values[0] / mean), *mass]


def static_group_features(env) -> np.ndarray:
    """``(m, len(STATIC_FEATURES))`` float32 features of a channel-granularity
    :class:`~prunegym.envs.prune_env.PruneEnv`'s groups (see the module docstring). Nothing
    is evaluated; the mask counts of ``m`` one-group removals are counted."""
    if env.granularity != "channel":
        raise ValueError(
            f"observation='features' describes channel groups; granularity={env.granularity!r} "
            "has none"
        )
    pruner = env.pruner
    model = pruner.model
    applied = np.asarray(pruner.applied_counts).copy()
    if applied.any():  # the norms are of the dense model; the masks go back afterwards
        pruner.restore()
    try:
        return _rows(env, pruner, model)
    finally:
        if applied.any():
            pruner.apply_counts(applied)


def _rows(env, pruner, model) -> np.ndarray:
    order = [
        name
        for name, module in model.named_modules()
        if next(module.parameters(False), None) is not None
    ]
    position = {name: index for index, name in enumerate(order)}
    components = {name for group in env.groups for name in group.components}
    total = float(pruner.total_parameters)
    rows = []
    for index, group in enumerate(env.groups):
        whole = np.zeros(len(env.groups))
        whole[index] = 1.0
        costs = env.costs_of(whole)
        dense_macs = float(costs.get("macs_dense") or 0.0)
        mac_share = 1.0 - costs["macs"] / dense_macs if dense_macs > 0 else 0.0
        depths = [position[name] for name in group.modules if name in position]
        depth = float(np.mean(depths)) / max(len(order) - 1, 1) if depths else 0.5
        norms = group_channel_norms(model, group).double()
        norm_mean = float(norms.mean())
        norm_spread = float(norms.std(unbiased=False)) / norm_mean if norm_mean > 0 else 0.0
        norm_spread = min(norm_spread, SPREAD_LIMIT)
        rows.append([
            np.log2(max(group.channels, 1)) / 12.0,
            group.parameters / total,
            mac_share,
            1.0 if group.kind == "coupling" else 0.0,
            depth,
            len(group.components) / max(len(components), 1),
            *_score_columns(pruner.scores[index]),
            norm_spread,
        ])  # fmt: skip
    return np.asarray(rows, dtype=np.float32)


def feature_observation(
    static: np.ndarray,
    coefficients: np.ndarray,
    context: dict[str, float],
    decided: np.ndarray | None = None,
    current: int | None = None,
) -> dict[str, np.ndarray]:
    """The observation: ``static`` rows with the dynamic columns appended, and the context
    vector in the order of :data:`CONTEXT_FEATURES` (missing entries 0)."""
    groups = len(static)
    dynamic = np.zeros((groups, len(DYNAMIC_FEATURES)), dtype=np.float32)
    dynamic[:, 0] = coefficients
    if decided is not None:
        dynamic[:, 1] = decided
    if current is not None and current < groups:
        dynamic[current, 2] = 1.0
    vector = np.array([context.get(name, 0.0) for name in CONTEXT_FEATURES], dtype=np.float32)
    return {"groups": np.concatenate([static, dynamic], axis=1), "context": vector}
