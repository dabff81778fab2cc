"""Strategies that evaluate many pruning candidates at once, for ``PruneEnv.evaluate_batch``.

Each strategy maps ``counts`` ``(K, m)`` (masked channels or weights per group) to K metric
dicts and leaves the model's masks as it found them.

- ``sliced``: the task's model is a chain of Linear layers and activations
  (:meth:`Task.evaluation_chain`); candidates run as physically sliced chains that share the
  activations of their common prefixes (:class:`prunegym.envs.evaluation.sliced_chain.SlicedChain`).
- ``stacked``: the task evaluates K parameter sets in one go (:meth:`Task.evaluate_stacked`:
  the TD-MPC agent's episodes for all candidates step together in lockstep, with one stacked
  policy call per decision, bit-identical to sequential evaluation). ``"auto"`` picks it only
  for tasks that declare ``Task.stacked_matches_evaluate``.
- ``sequential``: mask in place and evaluate, one candidate after the other.

``benchmarks/batched_candidates.py`` measures them against each other.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from prunegym.envs.evaluation.sliced_chain import SlicedChain, UnsupportedChain
from prunegym.tasks.base import Task

STRATEGIES = ("auto", "sliced", "stacked", "sequential")


class SequentialBatch:
    """One candidate after the other: apply the masks in place, evaluate, restore."""

    name = "sequential"

    def __init__(self, task: Task, model: nn.Module, pruner) -> None:
        self.task, self.model, self.pruner = task, model, pruner

    def __call__(self, counts: np.ndarray) -> list[dict[str, float]]:
        previous = self.pruner.applied_counts
        try:
            results = []
            for row in _by_similarity(counts):
                self.pruner.apply_counts(counts[row])
                results.append((row, self.task.evaluate(self.model)))
        finally:
            self.pruner.apply_counts(previous)
        return [metrics for _, metrics in sorted(results, key=lambda item: item[0])]


class StackedBatch(SequentialBatch):
    """The candidates' masked parameters, stacked ``(k, *shape)``, for
    :meth:`Task.evaluate_stacked`, ``chunk`` candidates at a time (memory: ``chunk`` copies of
    the parameters)."""

    name = "stacked"
    chunk = 32

    def __call__(self, counts: np.ndarray) -> list[dict[str, float]]:
        results: list[dict[str, float]] = []
        for start in range(0, len(counts), self.chunk):
            results += self._stacked(counts[start : start + self.chunk])
        return results

    def _stacked(self, counts: np.ndarray) -> list[dict[str, float]]:
        previous = self.pruner.applied_counts
        names = [name for name, _ in self.model.named_parameters()]
        sets: dict[str, list[torch.Tensor]] = {name: [] for name in names}
        try:
            for row in counts:
                self.pruner.apply_counts(row)
                for name, parameter in self.model.named_parameters():
                    sets[name].append(parameter.detach().clone())
        finally:
            self.pruner.apply_counts(previous)
        stacked = {name: torch.stack(values) for name, values in sets.items()}
        results = self.task.evaluate_stacked(self.model, stacked)
        if len(results) != len(counts):
            raise RuntimeError(
                f"{type(self.task).__name__}.evaluate_stacked returned {len(results)} results "
                f"for {len(counts)} parameter sets"
            )
        return results


class SlicedBatch:
    """Physically sliced chains with shared prefixes (channel granularity only)."""

    name = "sliced"

    def __init__(self, task: Task, model: nn.Module, pruner, dense_metrics: dict) -> None:
        chain = task.evaluation_chain(model)
        if chain is None:
            raise UnsupportedChain(f"task {task.name!r} defines no evaluation_chain()")
        inputs, modules = chain
        self.task = task
        self.chain = SlicedChain(model, pruner.masker, modules, inputs)
        zero = np.zeros((1, len(pruner.channels)), dtype=np.int64)
        check = self(zero)[0]
        for key, value in dense_metrics.items():  # the chain must reproduce evaluate()
            if key in check and not math.isclose(check[key], value, rel_tol=1e-4, abs_tol=1e-6):
                raise RuntimeError(
                    f"task {task.name!r}: its evaluation_chain() gives {key}={check[key]!r} "
                    f"for the dense model, evaluate() gives {value!r}"
                )

    def __call__(self, counts: np.ndarray) -> list[dict[str, float]]:
        results: list[dict[str, float] | None] = [None] * len(counts)
        for k, outputs in self.chain.outputs(counts):
            results[k] = self.task.metrics_of_outputs(outputs)
        return results  # type: ignore[return-value]


def make_batch_evaluator(strategy: str, task: Task, model: nn.Module, pruner, dense_metrics):
    """The strategy named, or for ``"auto"`` the fastest one that reproduces ``env.step``'s
    metrics: ``sliced`` (channel masks on a chain), then ``stacked`` (if the task's
    ``stacked_matches_evaluate``), then ``sequential``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"batching must be one of {STRATEGIES}, got {strategy!r}")
    channel = hasattr(pruner, "masker")
    if strategy in ("auto", "sliced") and channel:
        try:
            return SlicedBatch(task, model, pruner, dense_metrics)
        except UnsupportedChain:
            if strategy == "sliced":
                raise
    elif strategy == "sliced":
        raise UnsupportedChain("sliced evaluation needs channel granularity")
    stacked = type(task).evaluate_stacked is not Task.evaluate_stacked
    if strategy == "stacked" and not stacked:
        raise ValueError(f"task {task.name!r} does not implement evaluate_stacked()")
    if (strategy == "auto" and stacked and task.stacked_matches_evaluate) or strategy == "stacked":
        return StackedBatch(task, model, pruner)
    return SequentialBatch(task, model, pruner)


def _by_similarity(counts: np.ndarray) -> list[int]:
    """Row order that visits candidates lexicographically, so consecutive masks differ in few
    groups and each in-place update touches few parameters."""
    if len(counts) == 0:
        return []
    return np.lexsort(counts.T[::-1]).tolist()
