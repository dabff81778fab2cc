"""How a batch of masked-unit counts ``(K, m)`` becomes K metric dicts.

- ``sliced``: the task is a :class:`~prunegym.tasks.capabilities.ChainEvaluation` (Linear
  layers and activations); candidates run as physically sliced chains that share the
  activations of their common prefixes (:class:`SlicedChain`). Nothing is written to the model.
- ``stacked``: the task is a :class:`~prunegym.tasks.capabilities.StackedEvaluation` (the
  TD-MPC agent's episodes for all candidates step together in lockstep, one stacked policy call
  per decision, bit-identical to sequential evaluation).
- ``batched``: the task is an :class:`~prunegym.tasks.capabilities.OutputEvaluation` (the K
  candidates run as one forward over K copies of the evaluation batch) or a
  :class:`~prunegym.tasks.capabilities.CandidateEvaluation` (its own lockstep run), the masks
  applied to the activations (:mod:`prunegym.envs.evaluation.batched`). Nothing is written to
  the model.
- ``sequential``: write the masks into the model and evaluate, one candidate after the other.

The strategies that write masks leave the pruner at whichever counts they applied last; the
environment re-applies its own counts when someone reads its model. ``check_task`` verifies
that a task's ``sliced``, ``batched`` and ``stacked`` paths reproduce ``sequential``;
``benchmarks/batched_candidates.py`` times them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from prunegym.envs.evaluation.batched import BatchedStrategy
from prunegym.envs.evaluation.sliced_chain import SlicedChain, UnsupportedChain
from prunegym.pruning.channel.candidate_masks import UnsupportedBatching
from prunegym.pruning.protocol import Pruner
from prunegym.tasks.base import Task
from prunegym.tasks.capabilities import ChainEvaluation, StackedEvaluation

STRATEGIES = ("auto", "sliced", "batched", "stacked", "sequential")


class SequentialStrategy:
    """One candidate after the other: mask in place, evaluate."""

    name = "sequential"

    def __init__(self, task: Task, model: nn.Module, pruner: Pruner) -> None:
        self.task, self.model, self.pruner = task, model, pruner

    def __call__(self, counts: np.ndarray) -> list[dict[str, float]]:
        results: list[dict[str, float] | None] = [None] * len(counts)
        for row in _by_similarity(counts):  # consecutive masks differ in few groups
            self.pruner.apply_counts(counts[row])
            results[row] = self.task.evaluate(self.model)
        return results  # type: ignore[return-value]


class StackedStrategy(SequentialStrategy):
    """The candidates' masked parameters, stacked ``(k, *shape)``, for the task's
    ``evaluate_stacked``, ``chunk`` candidates at a time (memory: ``chunk`` copies of the
    parameters)."""

    name = "stacked"
    chunk = 32

    def __call__(self, counts: np.ndarray) -> list[dict[str, float]]:
        results: list[dict[str, float]] = []
        for start in range(0, len(counts), self.chunk):
            results += self._stacked(counts[start : start + self.chunk])
        return results

    def _stacked(self, counts: np.ndarray) -> list[dict[str, float]]:
        sets: dict[str, list[torch.Tensor]] = {
            name: [] for name, _ in self.model.named_parameters()
        }
        for row in counts:
            self.pruner.apply_counts(row)
            for name, parameter in self.model.named_parameters():
                sets[name].append(parameter.detach().clone())
        stacked = {name: torch.stack(values) for name, values in sets.items()}
        results = self.task.evaluate_stacked(self.model, stacked)
        if len(results) != len(counts):
            raise RuntimeError(
                f"{type(self.task).__name__}.evaluate_stacked returned {len(results)} results "
                f"for {len(counts)} parameter sets"
            )
        return results


class SlicedStrategy:
    """Physically sliced chains with shared prefixes (channel granularity only)."""

    name = "sliced"

    def __init__(self, task: Task, model: nn.Module, pruner: Pruner) -> None:
        if pruner.masker is None:
            raise UnsupportedChain("sliced evaluation needs channel granularity")
        if not isinstance(task, ChainEvaluation):
            raise UnsupportedChain(f"task {task.name!r} defines no evaluation_chain()")
        inputs, modules = task.evaluation_chain(model)
        self.task = task
        self.chain = SlicedChain(model, pruner.masker, modules, inputs)

    def __call__(self, counts: np.ndarray) -> list[dict[str, float]]:
        results: list[dict[str, float] | None] = [None] * len(counts)
        for k, outputs in self.chain.outputs(counts):
            results[k] = self.task.metrics_of_outputs(outputs)
        return results  # type: ignore[return-value]


def make_strategy(
    name: str,
    task: Task,
    model: nn.Module,
    pruner: Pruner,
    memory_mb: float | None = None,
    precision: str = "fp32",
    on_gpu: bool | None = None,
):
    """The strategy named, or for ``"auto"`` the fastest the task supports. On a GPU:
    ``batched`` (one forward for all candidates), then ``stacked``, ``sliced``,
    ``sequential``. On the CPU, where a forward costs in proportion to its rows and the mask
    passes over K copies of the activations cost memory bandwidth, ``sliced`` (sliced layers,
    shared prefixes), then ``stacked``, then ``sequential`` (``batched`` only when named). The
    sliced chain computes in float32 only, so other precisions skip it. A ``batched`` strategy is
    probed first (:func:`probed_batched`); ``auto`` moves on when the probe fails. ``on_gpu``
    (default: whether the masks live on a GPU) picks the order. With adaptive BatchNorm
    (``bn_recalibration``), every masked model has its own statistics: sequential only; with
    ``lsq`` compensation, its own weights: every strategy but ``batched`` (the sliced chain
    slices the refit weights, stacked reads the written ones)."""
    if name not in STRATEGIES:
        raise ValueError(f"batching must be one of {STRATEGIES}, got {name!r}")
    stacked = isinstance(task, StackedEvaluation) and getattr(task, "stacks_evaluation", True)
    if name == "stacked" and not stacked:
        raise ValueError(f"task {task.name!r} offers no stacked evaluation (evaluate_stacked)")
    recalibrates = getattr(pruner, "recalibration", None) is not None  # statistics per model
    refits = pruner.granularity == "channel" and pruner.compensation == "lsq"  # weights too
    if recalibrates or refits:
        allowed = ("auto", "sequential")
        if not recalibrates:
            allowed += ("sliced", "stacked")
        if name not in allowed:
            cause = (
                "BatchNorm statistics are re-estimated (bn_recalibration)"
                if recalibrates
                else "weights are refit (compensation='lsq')"
            )
            raise ValueError(
                f"batching={name!r} cannot evaluate candidates whose {cause}; use "
                f"{' or '.join(allowed)}"
            )
        if recalibrates:
            return SequentialStrategy(task, model, pruner)
    gpu = on_gpu
    if gpu is None:
        gpu = pruner.masker is not None and pruner.masker.device.type != "cpu"
    if not refits and (name == "batched" or (name == "auto" and gpu)):
        try:
            return probed_batched(BatchedStrategy(task, model, pruner, memory_mb), precision)
        except UnsupportedBatching:
            if name == "batched":
                raise
    if name == "sliced" and precision != "fp32":
        raise ValueError(f"sliced evaluation runs in fp32 only, not {precision}")
    if name in ("auto", "sliced") and precision == "fp32":
        try:
            return SlicedStrategy(task, model, pruner)
        except UnsupportedChain:
            if name == "sliced":
                raise
    if stacked and name in ("auto", "stacked"):
        return StackedStrategy(task, model, pruner)
    return SequentialStrategy(task, model, pruner)


def probed_batched(batched: BatchedStrategy, precision: str) -> BatchedStrategy:
    """``batched`` once it has evaluated two candidates (the dense model and one with about a
    third of each group masked) without error and, for feed-forward tasks at fp32, both equal
    the sequential evaluation to a relative 1e-4 (hooks cannot mask a parameter used outside
    its module's forward, and a forward that mixes rows would mix candidates).

    Raises:
        UnsupportedBatching: naming what went wrong.
    """
    pruner = batched.pruner
    counts = np.stack(
        [np.zeros_like(pruner.channels), pruner.counts(np.full(len(pruner.channels), 0.3))]
    )
    try:
        found = batched(counts)
    except (RuntimeError, ValueError) as error:  # shape errors of rows that did not expand
        raise UnsupportedBatching(f"the batched forward failed: {error}") from error
    if batched.candidates or precision != "fp32":
        return batched
    sequential = SequentialStrategy(batched.task, batched.model, pruner)(counts)
    pruner.restore()
    for k, (got, want) in enumerate(zip(found, sequential, strict=True)):
        for key, value in want.items():
            if not math.isclose(got.get(key, math.nan), value, rel_tol=1e-4, abs_tol=1e-6):
                raise UnsupportedBatching(
                    f"task {batched.task.name!r}: the batched forward gives {key}="
                    f"{got.get(key)!r} for probe {k}, the masked model {value!r}"
                )
    return batched


def _by_similarity(counts: np.ndarray) -> list[int]:
    """Row order that visits candidates lexicographically, so consecutive masks differ in few
    groups and each in-place update touches few parameters."""
    if len(counts) <= 1:
        return list(range(len(counts)))
    return np.lexsort(counts.T[::-1]).tolist()
