"""How far channel masks move a model's outputs on the task's calibration batches.

How far is read from the task's ``output_kind``: the mean squared difference of ``"values"``,
or, for ``"logits"`` (class scores), the mean Kullback–Leibler divergence of the masked model's
softmax from the dense model's, which tracks a classifier's loss where squared differences of
logits do not (``examples/screen_zoo.py``).

The learned policy's screen ranks allocations by it without evaluating any metric
(:meth:`prunegym.envs.prune_env.PruneEnv.calibration_distortion`). Each distinct mask is
computed once. Where the environment evaluates candidates batched (``batching="batched"``,
the default on a GPU), the masks act on activations
(:class:`~prunegym.pruning.channel.candidate_masks.CandidateMasks`) and the candidates run as
one forward per calibration batch over K copies of it, through the dense weights; otherwise
(the CPU's default, where K copies cost more than K small forwards on convolutional networks:
``benchmarks/calibration_distortion.py``) each mask is written into the model and run in turn.
The batched path is checked against the sequential one on one mask first, and is not used
if the two disagree or the outputs cannot be split into candidates.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager

import numpy as np
import torch
from torch import nn

from prunegym.envs.evaluation.batched import activation_bytes, candidate_outputs, default_budget_mb
from prunegym.pruning.channel.candidate_masks import CandidateMasks, UnsupportedBatching
from prunegym.pruning.protocol import Pruner
from prunegym.tasks.base import Task

OUTPUT_KINDS = ("values", "logits")  # Task.output_kind


def divergences(outputs: torch.Tensor, dense: torch.Tensor, kind: str) -> torch.Tensor:
    """Float64, elementwise, how far ``outputs`` are from ``dense`` (the same shape, or
    ``(K, *dense.shape)`` for K candidates): squared differences of ``"values"``; for
    ``"logits"``, ``KL(softmax(dense) ‖ softmax(outputs))`` over the last dimension (one value
    per row of class scores)."""
    if kind == "logits":
        reference = dense.double().log_softmax(-1)
        return (reference.exp() * (reference - outputs.double().log_softmax(-1))).sum(-1)
    return (outputs.double() - dense.double()).pow(2)


class CalibrationDistortion:
    """``(K,)`` float64 distortions of channel-count rows ``(K, m)``: the mean
    :func:`divergences` of the masked (and compensated) model's outputs from the dense model's
    (by the task's ``output_kind``), averaged over the task's calibration batches
    (``task.forward``).

    Args:
        task, model, pruner: The environment's (the model is the environment's own).
        precise: The context every forward runs in (the environment's precision).
        memory_mb: Activation memory a batched chunk of candidates may take (default: 512 MiB
            on the CPU, half the free memory of a GPU).
        batched: Whether to try the batched path (the environment's strategy is
            ``batched``); ``False``: one mask at a time.
    """

    def __init__(
        self,
        task: Task,
        model: nn.Module,
        pruner: Pruner,
        precise: Callable[[], AbstractContextManager],
        memory_mb: float | None = None,
        batched: bool = False,
    ) -> None:
        self.kind = getattr(task, "output_kind", "values")
        if self.kind not in OUTPUT_KINDS:
            raise ValueError(
                f"task {task.name!r}: output_kind must be one of {OUTPUT_KINDS}, got {self.kind!r}"
            )
        self.task, self.model, self.pruner, self.precise = task, model, pruner, precise
        self.memory_mb, self.batched = memory_mb, batched
        self._dense: list[torch.Tensor] | None = None
        self._masks: CandidateMasks | None | bool = None  # None: not tried yet; False: cannot
        self._chunk = 1

    def __call__(self, counts: np.ndarray) -> np.ndarray:
        unique, inverse = np.unique(np.asarray(counts), axis=0, return_inverse=True)
        if not len(unique):
            return np.zeros(0)
        with self.precise():
            if self._dense is None:
                self._dense = self._masked_outputs(np.zeros(unique.shape[1], np.int64))
            values = self._batched(unique) if self._batches(unique) else None
            if values is None:
                values = np.array([self._distortion(self._masked_outputs(row)) for row in unique])
        return values[inverse.reshape(-1)]

    def _distortion(self, outputs: list[torch.Tensor]) -> float:
        pairs = zip(outputs, self._dense, strict=True)
        return float(torch.stack([divergences(a, b, self.kind).mean() for a, b in pairs]).mean())

    def _masked_outputs(self, counts: np.ndarray) -> list[torch.Tensor]:
        self.pruner.apply_counts(counts)
        return [self.task.forward(self.model, batch) for batch in self.task.calibration_batches()]

    def _batches(self, counts: np.ndarray) -> bool:
        """Whether the batched path serves this task; decided the first time, by computing the
        most pruned mask of ``counts`` both ways, beside the dense one (two candidates in one
        forward)."""
        if self._masks is None:
            self._masks = self._batching(counts[np.argmax(counts.sum(axis=1))])
        return self._masks is not False

    def _batching(self, probe: np.ndarray) -> CandidateMasks | bool:
        masker = getattr(self.pruner, "masker", None)
        if masker is None or not self.batched:
            return False
        try:
            self._masks = CandidateMasks(self.model, masker)
        except UnsupportedBatching:  # a masked parameter whose masks cannot act on activations
            return False
        batch = next(iter(self.task.calibration_batches()))
        budget = default_budget_mb(masker.device) if self.memory_mb is None else self.memory_mb
        self._chunk = max(1, int(budget * 2**20 // activation_bytes(self.task, self.model, batch)))
        found = self._batched(np.stack([probe, np.zeros_like(probe)]), probing=True)
        if found is None:
            return False
        alone = self._distortion(self._masked_outputs(probe))
        scale = float(np.mean([dense.double().pow(2).mean().item() for dense in self._dense]))
        dense_again = found[1] <= 1e-10 * scale  # the unmasked candidate: rounding only
        agree = dense_again and math.isclose(found[0], alone, rel_tol=1e-3, abs_tol=1e-12)
        return self._masks if agree else False

    def _batched(self, counts: np.ndarray, probing: bool = False) -> np.ndarray | None:
        """The distortions of ``counts`` ``(K, m)``, ``chunk`` candidates per forward; ``None``
        (and the batched path off) where the masks or the outputs cannot be split into
        candidates: silently while ``probing``, with a warning once the path was in use (an
        error then, such as running out of GPU memory, is not the task's design)."""
        if np.any(self.pruner.applied_counts != 0):
            self.pruner.restore()  # the batched forward runs on the dense weights
        totals = np.zeros(len(counts))
        batches = list(self.task.calibration_batches())
        try:
            for batch, dense in zip(batches, self._dense, strict=True):
                for start in range(0, len(counts), self._chunk):
                    part = counts[start : start + self._chunk]
                    outputs = candidate_outputs(self.task, self.model, self._masks, part, batch)
                    errors = divergences(outputs, dense, self.kind).flatten(1).mean(dim=1)
                    totals[start : start + len(part)] += errors.cpu().numpy()
        except (UnsupportedBatching, RuntimeError) as error:  # e.g. unsplit rows mixed in
            self._masks = False
            if not probing:
                cause = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
                warnings.warn(
                    f"calibration distortion: the batched forward failed ({cause}); computing "
                    "one mask at a time from now on",
                    stacklevel=2,
                )
            return None
        return totals / len(batches)
