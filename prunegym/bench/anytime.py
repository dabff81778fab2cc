"""Quality against compute: the best result so far of every solver, per evaluation and per
wall second, and the area under that curve (as CompilerGym's leaderboard reports search cost).

A result's history gives, for each evaluation, its metric, whether it was in the window and
the wall seconds since the run started. The *quality* of a feasible evaluation is

    q = 1 + clip(σ·(metric − dense) / scale, −1, 0)   ∈ [0, 1]

(1: the dense model's metric; 0: a full ``metric_scale`` worse, or worse still), and the
curve is the best ``q`` of the feasible evaluations so far, 0 before the first. The area is
its mean over evaluations ``1..B`` (or seconds ``0..T``), where ``B`` (``T``) is the largest
count (duration) of any solver at that task and target: a solver that stopped early keeps its
final best, so stopping early is not penalised, only being late. ``T`` is at least
:data:`MIN_HORIZON_SECONDS`: where every solver answers within a fraction of a second, the
milliseconds between them are timing noise, not search cost, and would otherwise decide the
area (the slowest one-evaluation solver would score 0).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from prunegym.tasks import task_class

MIN_HORIZON_SECONDS = 1.0


def quality(metric: float, dense: float, sign: float, scale: float) -> float:
    """``q`` of ``metric`` (see the module docstring); 0 for a NaN metric."""
    if not np.isfinite(metric):
        return 0.0
    return 1.0 + float(np.clip(sign * (metric - dense) / scale, -1.0, 0.0))


def higher_is_better(result) -> bool:
    """Whether ``result``'s metric is better higher, as the result records it; for older files,
    its task class's (which builds a task registered as a function, with no options)."""
    recorded = getattr(result, "higher_is_better", None)
    return task_class(result.task).higher_is_better if recorded is None else recorded


def best_so_far(result) -> tuple[np.ndarray, np.ndarray]:
    """``(seconds, q)`` per evaluation of ``result``: the best feasible quality so far, with
    the metric scale the result records (its task class's for older files)."""
    sign = 1.0 if higher_is_better(result) else -1.0
    scale = getattr(result, "metric_scale", None)
    if not scale:
        scale = float(getattr(task_class(result.task), "metric_scale", 1.0))
    seconds, values, best = [], [], 0.0
    for entry in result.history:
        if entry.get("feasible", True) and abs(entry["sparsity"] - result.target) <= (
            result.tolerance + 1e-12
        ):
            best = max(best, quality(entry["metric"], result.dense_metric, sign, scale or 1.0))
        seconds.append(float(entry.get("seconds", 0.0)))
        values.append(best)
    return np.asarray(seconds), np.asarray(values)


def _area_by_evaluations(values: np.ndarray, horizon: int) -> float:
    if horizon == 0:
        return 0.0
    padded = np.full(horizon, values[-1] if len(values) else 0.0)
    padded[: len(values)] = values[:horizon]
    return float(padded.mean())


def _area_by_seconds(seconds: np.ndarray, values: np.ndarray, horizon: float) -> float:
    if horizon <= 0 or len(values) == 0:
        return float(values[-1]) if len(values) else 0.0
    edges = np.clip(np.append(seconds, horizon), 0.0, horizon)  # q[i] holds from seconds[i]
    return float(np.sum(values * np.diff(edges)) / horizon)


def areas(results: list) -> list[dict]:
    """One row per (task, solver): the area under best-so-far quality against evaluations
    and against seconds, averaged over targets and seeds, with the final quality."""
    by_cell = defaultdict(list)
    for result in results:
        by_cell[(result.task, result.target, result.seed)].append(result)
    rows = defaultdict(lambda: defaultdict(list))
    for (task, _, _), cell in by_cell.items():
        curves = {id(r): best_so_far(r) for r in cell}
        evaluations = max(len(values) for _, values in curves.values())
        seconds = max((s[-1] for s, _ in curves.values() if len(s)), default=0.0)
        seconds = max(seconds, MIN_HORIZON_SECONDS)
        for result in cell:
            times, values = curves[id(result)]
            row = rows[(task, result.solver)]
            row["by_evaluations"].append(_area_by_evaluations(values, evaluations))
            row["by_seconds"].append(_area_by_seconds(times, values, seconds))
            row["final"].append(float(values[-1]) if len(values) else 0.0)
    return [
        {"task": task, "solver": solver, **{key: float(np.mean(v)) for key, v in row.items()}}
        for (task, solver), row in rows.items()
    ]


def curves(results: list, task: str) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Solver → its ``(seconds, q)`` curves on ``task`` (one per target and seed)."""
    found = defaultdict(list)
    for result in results:
        if result.task == task:
            found[result.solver].append(best_so_far(result))
    return dict(found)
