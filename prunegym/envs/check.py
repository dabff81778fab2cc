"""``check_task``: does a task behave as the environment assumes? (Gymnasium's ``check_env``
for tasks.) Run it once on your own task; the tests run it on the shipped ones."""

from __future__ import annotations

import math

import numpy as np
import torch

from prunegym.envs.evaluation.sliced_chain import UnsupportedChain
from prunegym.envs.evaluation.strategies import make_strategy
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks.base import Task
from prunegym.tasks.capabilities import ChainEvaluation

_HOOKS = {
    "sliced": "evaluation_chain()",
    "batched": "evaluation_batch and metrics_of_outputs()",
    "stacked": "evaluate_stacked()",
}


def check_task(
    task: Task | str, candidates: int = 4, seed: int = 0, rtol: float | None = None, **env_kwargs
) -> dict[str, object]:
    """Check ``task`` as :class:`PruneEnv` uses it; raises ``RuntimeError`` naming the first
    problem. When all is well, returns what was checked: ``{"batched_paths": [...],
    "largest_relative_difference": float}`` (the batched paths the task offers, and their
    largest relative difference from ``evaluate`` over every metric and candidate).

    - ``evaluate`` is deterministic (the cache relies on it): two evaluations of the dense
      model are equal.
    - Every batched path the task offers (``evaluation_chain`` → sliced, ``evaluation_batch``
      or ``evaluate_candidates`` → batched, ``evaluate_stacked`` → stacked) reproduces
      ``evaluate`` of the masked model for the dense model and ``candidates`` random masks, to
      ``rtol`` (default 1e-4 at fp32, 1e-2 at the environment's lower precisions).
    - ``reset`` restores the dense parameters bit for bit after a step.

    ``env_kwargs`` go to :class:`PruneEnv` (e.g. ``granularity``, ``criterion``,
    ``precision``: every evaluation runs at it); ``batching`` and ``cache`` are refused, as
    the check sets them.
    """
    own = sorted({"batching", "cache"} & set(env_kwargs))
    if own:
        raise ValueError(f"check_task sets {own} itself (it checks every batched path)")
    env = PruneEnv(task, batching="sequential", cache=False, **env_kwargs)
    task, precise = env.task, env.evaluator.precise  # at the environment's precision
    if rtol is None:
        rtol = 1e-4 if env.evaluator.precision == "fp32" else 1e-2
    dense = {name: value.clone() for name, value in env.model.state_dict().items()}
    broken = {key: value for key, value in env.dense_metrics.items() if math.isnan(value)}
    if broken:
        raise RuntimeError(f"task {task.name!r}: evaluate() of the dense model gives {broken}")
    with precise():
        again = task.evaluate(env.model)
    if again != env.dense_metrics:
        raise RuntimeError(
            f"task {task.name!r}: evaluate() is not deterministic ({env.dense_metrics} then "
            f"{again}); PruneEnv(cache=False) is needed, and results cannot be validated"
        )
    rows = np.random.default_rng(seed).uniform(0.0, 0.6, (candidates + 1, len(env.groups)))
    rows[0] = 0.0
    reference = env.evaluate_batch(rows)
    counts = env.pruned_counts(rows)
    report: dict[str, object] = {"batched_paths": [], "largest_relative_difference": 0.0}
    for name, hook in _HOOKS.items():
        try:
            strategy = make_strategy(
                name, task, env.model, env.pruner, precision=env.evaluator.precision
            )
        except UnsupportedChain as error:
            own = "evaluation_chain" in vars(type(task))  # not inherited from a shipped task
            if own and isinstance(task, ChainEvaluation) and env.pruner.granularity == "channel":
                problem = f"task {task.name!r}: its {hook} cannot be sliced: {error}"
                raise RuntimeError(problem) from None
            continue  # the task does not offer this path
        except ValueError:
            continue  # the task does not offer this path
        report["batched_paths"].append(name)
        with precise():
            found = strategy(counts)
        for k, (got, want) in enumerate(zip(found, reference, strict=True)):
            for key, value in got.items():
                scale = max(abs(want[key]), 1e-12)
                difference = abs(value - want[key]) / scale
                report["largest_relative_difference"] = max(
                    report["largest_relative_difference"], difference
                )
                if not math.isclose(value, want[key], rel_tol=rtol, abs_tol=1e-6):
                    raise RuntimeError(
                        f"task {task.name!r}: its {hook} gives {key}={value!r} for candidate "
                        f"{k} (counts {counts[k].tolist()}), evaluate() gives {want[key]!r} "
                        f"(rtol {rtol:g})"
                    )
    env.step(rows[1])
    env.reset()
    for name, value in env.model.state_dict().items():
        if not torch.equal(value, dense[name]):
            raise RuntimeError(f"task {task.name!r}: reset() did not restore {name} bit for bit")
    return report
