"""The ``batched`` strategy: K channel-masked candidates as one forward over K copies of the
task's evaluation batch, the dense weights shared, each candidate's masks applied to its
activations (:class:`~prunegym.pruning.channel.candidate_masks.CandidateMasks`).

It needs channel granularity and a task that is an
:class:`~prunegym.tasks.capabilities.OutputEvaluation` (the metric is a function of the outputs
on one batch) or a :class:`~prunegym.tasks.capabilities.CandidateEvaluation` (it runs the K
candidates' episodes in lockstep itself, inside the masks' context). Linear chains become one
matrix product of ``K·N`` rows per layer, convolutional networks one convolution of ``K·N``
images per layer, BatchNorm and residual additions included. Candidates are evaluated in chunks
whose activations fit a memory budget.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from prunegym.pruning.channel.candidate_masks import CandidateMasks, UnsupportedBatching
from prunegym.pruning.protocol import Pruner
from prunegym.tasks.base import Task
from prunegym.tasks.capabilities import (
    CandidateEvaluation,
    OutputEvaluation,
    StackedOutputMetrics,
)

CPU_BUDGET_MB = 512.0


def default_budget_mb(device: torch.device) -> float:
    """512 MiB on the CPU; half the free memory of a GPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free / 2**21
    return CPU_BUDGET_MB


def _first_tensor(batch) -> torch.Tensor:
    return batch if isinstance(batch, torch.Tensor) else batch[0]


@torch.no_grad()
def activation_bytes(task: Task, model: nn.Module, batch) -> int:
    """Bytes of every leaf module's output in ``task.forward(model, batch)``: what one copy's
    activations take, at most."""
    total = 0

    def count(module, args, output):
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel() * output.element_size()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [leaf.register_forward_hook(count) for leaf in leaves]
    try:
        task.forward(model, batch)
    finally:
        for handle in handles:
            handle.remove()
    return max(total, 1)


class BatchedStrategy:
    """K candidates in one forward (see the module docstring).

    Args:
        task: An :class:`OutputEvaluation` task, or a :class:`CandidateEvaluation` one (it runs
            its own lockstep evaluation inside the masks' context).
        model: The environment's model; the forward needs its dense weights, so masks written
            into it are undone first (the environment re-applies its own when read).
        pruner: A channel-granularity pruner.
        memory_mb: Activation memory a chunk of candidates may take (default
            :func:`default_budget_mb`).

    Raises:
        UnsupportedBatching: for weight granularity, a task with neither capability, or masks
            that cannot act on activations.
    """

    name = "batched"

    def __init__(
        self, task: Task, model: nn.Module, pruner: Pruner, memory_mb: float | None = None
    ) -> None:
        if pruner.masker is None:
            raise UnsupportedBatching("batched evaluation needs channel granularity")
        self.task, self.model, self.pruner = task, model, pruner
        self.candidates = isinstance(task, CandidateEvaluation) and task.batches_candidates
        if isinstance(task, OutputEvaluation):
            self.rows = _first_tensor(task.evaluation_batch).shape[0]
            self.candidate_bytes = activation_bytes(task, model, task.evaluation_batch)
        elif self.candidates:
            batch = next(iter(task.calibration_batches()))
            per_row = activation_bytes(task, model, batch) / _first_tensor(batch).shape[0]
            self.candidate_bytes = max(1, int(per_row * task.candidate_rows))
        else:
            raise UnsupportedBatching(
                f"task {task.name!r} defines neither evaluation_batch and metrics_of_outputs() "
                "nor evaluate_candidates()"
            )
        self.masks = CandidateMasks(model, pruner.masker)
        budget = default_budget_mb(pruner.masker.device) if memory_mb is None else memory_mb
        if not budget > 0:
            raise ValueError(f"batch_memory_mb must be > 0, got {memory_mb!r}")
        #: Candidates per forward.
        self.chunk = max(1, int(budget * 2**20 // self.candidate_bytes))

    def __call__(self, counts: np.ndarray) -> list[dict[str, float]]:
        if np.any(self.pruner.applied_counts != 0):
            self.pruner.restore()  # the forward runs on the dense weights
        results: list[dict[str, float]] = []
        for start in range(0, len(counts), self.chunk):
            part = counts[start : start + self.chunk]
            results += self._candidates(part) if self.candidates else self._outputs(part)
        return results

    @torch.no_grad()
    def _candidates(self, counts: np.ndarray) -> list[dict[str, float]]:
        def masked(rows: int):
            return self.masks.applied(counts, rows)

        return self.task.evaluate_candidates(self.model, len(counts), masked)

    @torch.no_grad()
    def _outputs(self, counts: np.ndarray) -> list[dict[str, float]]:
        outputs = candidate_outputs(
            self.task, self.model, self.masks, counts, self.task.evaluation_batch
        )
        if isinstance(self.task, StackedOutputMetrics):
            return self.task.metrics_of_stacked_outputs(outputs)
        return [self.task.metrics_of_outputs(row) for row in outputs]


def candidate_outputs(
    task: Task, model: nn.Module, masks: CandidateMasks, counts: np.ndarray, batch
) -> torch.Tensor:
    """``task.forward(model, batch)`` for each candidate of ``counts`` ``(K, m)``, one forward
    over K copies of ``batch`` (``model`` holding the dense weights): ``(K, N, *out)``."""
    count, rows = len(counts), _first_tensor(batch).shape[0]
    with masks.applied(counts, rows):
        outputs = task.forward(model, batch)
    if outputs.shape[0] == rows and count > 1:  # no mask reached the output
        outputs = outputs.unsqueeze(0).expand(count, *outputs.shape)
    return outputs.reshape(count, rows, *outputs.shape[1:])
