"""Allocations onto a sparsity target with exact parameter counts; nothing is evaluated.

- :func:`scale_to_target` scales per-group directions onto the target (the learned policy's
  answers, local-search moves) and repairs rows that one coarse channel pushes out of the
  window.
- :func:`lamp_allocation` masks every channel below one global threshold on LAMP-normalised
  scores: the prior that the learned policy corrects; :func:`lamp_answer` scales it onto the
  window, as the ``lamp`` baseline answers.
"""

from __future__ import annotations

import numpy as np

from prunegym.envs.sparsity_search import bisect_sparsity

PRIOR_FLOOR = 0.01  # the learned policy adds it to the prior: a group left dense can be pruned


def scale_to_target(
    core, directions: np.ndarray, targets: np.ndarray, steps: int = 40, walk: tuple = (64, 16)
):
    """``c = clip(α·d, 0, 0.95)`` per row of ``directions`` ``(K, m)`` with the exact sparsity
    nearest its row's target ``(K,)``: a bisection on each ``α``, all rows at once, with exact
    counts (no evaluation). Returns ``(K, m)`` float64.

    Where the last channel that ``α`` adds is too coarse for the window (a group holding most
    of the parameters, while the others are saturated or barely pruned), the row is repaired:
    the groups whose counts that channel changed stay fixed, and every other group is raised
    by the same amount from just below the target, or lowered from just above it, bisected
    onto the target; the nearest of the three rows is kept. A row still outside its window is
    then moved onto it one channel at a time (:func:`_channel_moves`, with ``walk`` =
    ``(moves, patience)``: longer walks land in more tight windows, at more cost where none
    can)."""
    directions = np.clip(np.asarray(directions, dtype=np.float64), 1e-6, None)
    targets = np.broadcast_to(np.asarray(targets, dtype=np.float64), (len(directions),))
    upper = float(core.action_space.high.max())

    def scaled(scale: np.ndarray) -> np.ndarray:
        return np.clip(scale[:, None] * directions, 0, upper)

    highest = upper / directions.min(axis=1)
    below, above = map(scaled, bisect_sparsity(core, scaled, 0 * highest, highest, targets, steps))
    best = _nearest(core, below, above, targets)
    miss = np.abs(core.sparsity_of(best) - targets) > core.tolerance
    if miss.any():
        low_rows, high_rows, wanted = below[miss], above[miss], targets[miss]
        fixed = core.pruned_counts(high_rows) != core.pruned_counts(low_rows)
        ceiling = np.full(len(wanted), upper)

        def raised(beta: np.ndarray) -> np.ndarray:  # the others up from below the target
            return np.where(fixed, low_rows, np.clip(low_rows + beta[:, None], 0, upper))

        def lowered(beta: np.ndarray) -> np.ndarray:  # or down from above it
            return np.where(
                fixed, high_rows, np.clip(high_rows - (upper - beta[:, None]), 0, upper)
            )

        repaired = best[miss]
        for rows_at in (raised, lowered):
            betas = bisect_sparsity(core, rows_at, 0 * ceiling, ceiling, wanted, steps)
            repaired = _nearest(
                core, repaired, _nearest(core, *map(rows_at, betas), wanted), wanted
            )
        best[miss] = _channel_moves(core, repaired, wanted, *walk)
    return best


def _channel_moves(
    core, rows: np.ndarray, targets: np.ndarray, moves: int = 64, patience: int = 16
) -> np.ndarray:
    """Rows ``(K, m)`` still outside their window, walked onto it one channel at a time where
    the counts allow: each move masks or unmasks one channel of one group, or moves one
    channel's mask from one group to another (a step as fine as two groups' channel sizes
    differ), to the allocation not visited before whose exact sparsity is nearest the target.
    Of the ``m(m − 1)`` moves between groups, only the ``4m`` whose sparsity the single moves
    predict nearest the target are counted exactly. The walk stops in the window, after
    ``moves`` moves, or after ``patience`` moves that found nothing nearer; each row becomes
    the nearest allocation it visited (itself where none was nearer)."""
    channels = np.asarray(core.channels)
    size = len(channels)
    upper = float(core.action_space.high.max())
    tops = core.pruned_counts(np.full(size, upper))
    eye = np.eye(size, dtype=np.int64)
    plus, minus = np.triu_indices(size, 1)  # every ordered pair i ≠ j: (i, j) and (j, i)
    plus, minus = np.concatenate([plus, minus]), np.concatenate([minus, plus])

    def sparsity(counts: np.ndarray) -> np.ndarray:
        return core.sparsity_of(np.minimum(counts / channels, upper))

    rows = rows.copy()
    for k, target in enumerate(targets):
        counts = core.pruned_counts(rows[k])
        best_gap, since_best = abs(sparsity(counts) - target), 0
        visited = {counts.tobytes()}
        for _ in range(moves):
            if best_gap <= core.tolerance or since_best >= patience:
                break
            here = sparsity(counts)
            singles = np.concatenate([counts + eye, counts - eye])
            inside = np.all((singles >= 0) & (singles <= tops), axis=1)
            changes = np.full(2 * size, np.inf)  # of +1 in each group, then of −1 in each
            changes[inside] = sparsity(singles[inside]) - here
            predicted = np.abs(here + changes[plus] + changes[size + minus] - target)
            pairs = np.argsort(predicted, kind="stable")[: 4 * size]
            swaps = counts + eye[plus[pairs]] - eye[minus[pairs]]
            candidates = np.concatenate([singles, swaps])
            fits = np.all((candidates >= 0) & (candidates <= tops), axis=1)
            candidates = candidates[fits]
            fresh = np.array([row.tobytes() not in visited for row in candidates], dtype=bool)
            if not fresh.any():
                break
            candidates = candidates[fresh]
            gaps = np.abs(sparsity(candidates) - target)
            nearest = int(np.argmin(gaps))
            counts = candidates[nearest]
            visited.add(counts.tobytes())
            since_best += 1
            if gaps[nearest] < best_gap:
                best_gap, since_best = gaps[nearest], 0
                rows[k] = np.minimum(counts / channels, upper)
    return rows


def _nearest(core, first: np.ndarray, second: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per row, whichever of ``first`` and ``second`` ``(K, m)`` is nearer its target."""
    gaps = [np.abs(core.sparsity_of(rows) - targets) for rows in (first, second)]
    return np.where((gaps[1] < gaps[0])[:, None], second, first)


def lamp_allocation(core, targets, steps: int = 50) -> np.ndarray:
    """``(T, m)`` float64 coefficients of one global threshold on LAMP-normalised channel
    scores, at each of ``targets`` ``(T,)``; nothing is evaluated.

    Within group ``i``, the environment's own channel scores ``v`` (its ``criterion``; negative
    ones count as 0), in the order the channels are masked, become ``v_k / Σ_{l≥k} v_l`` (Lee et
    al. 2021, LAMP: scale-free, so groups compare), divided by the group's parameters per
    channel (a channel that frees more parameters goes first). Every channel whose value is
    below a threshold ``λ`` is masked; ``λ`` is bisected onto each target with exact counts,
    and where one ``λ`` adds several channels at once (tied scores), the step is taken in the
    fraction that lands nearest the target. ``core``: an unwrapped channel-granularity
    ``PruneEnv``."""
    if core.granularity != "channel":
        raise ValueError(f"lamp allocates channel groups; granularity={core.granularity!r}")
    targets = np.atleast_1d(np.asarray(targets, dtype=np.float64))
    upper = float(core.action_space.high.max())
    keys = []
    pruner = core.pruner
    for group, scores, order in zip(core.groups, pruner.scores, pruner.orders, strict=True):
        values = np.clip(scores.double().cpu()[order.cpu()].numpy(), 0.0, None)
        tail = np.cumsum(values[::-1])[::-1]
        normalised = np.divide(values, tail, out=np.zeros_like(values), where=tail > 0)
        keys.append(normalised * group.channels / max(group.parameters, 1))

    def masked(threshold: np.ndarray) -> np.ndarray:
        fractions = [np.searchsorted(k, threshold, side="left") / len(k) for k in keys]
        return np.clip(np.stack(fractions, axis=-1), 0.0, upper)

    def between(share: np.ndarray) -> np.ndarray:  # a share of the channels one λ adds
        return below + share[:, None] * (above - below)

    top = max(float(k.max()) for k in keys if len(k)) * (1 + 1e-9) + 1e-300
    zeros, ones = np.zeros(len(targets)), np.ones(len(targets))
    below, above = map(masked, bisect_sparsity(core, masked, zeros, top * ones, targets, steps))
    shares = bisect_sparsity(core, between, zeros, ones, targets, steps)
    return _nearest(core, *map(between, shares), targets)


def norm_direction(norms) -> np.ndarray:
    """The ``norm`` baseline's direction ``(m,)`` float64, ``c_i ∝ 1/‖w_i‖`` with the largest
    entry 1, from the mean per-channel L2 norms ``norms`` ``(m,)`` of the dense groups."""
    norms = np.asarray(norms, dtype=np.float64)
    return norms.min() / np.maximum(norms, 1e-12)


def lamp_answer(core, target: float) -> np.ndarray:
    """The ``lamp`` solver's coefficients ``(m,)`` float64 at ``target``:
    :func:`lamp_allocation` scaled onto the window (:func:`scale_to_target`)."""
    return scale_to_target(core, lamp_allocation(core, target), target)[0]
