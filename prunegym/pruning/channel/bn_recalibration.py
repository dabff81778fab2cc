"""Adaptive BatchNorm (EagleEye, Li et al. 2020): re-estimate running statistics after masking.

A BatchNorm layer normalises with the running mean and variance of the dense model, but masking
channels upstream shifts the distribution it sees. EagleEye's adaptive BN re-estimates those
statistics on a few calibration batches of the masked model, without touching a weight:
every ``BatchNorm`` is reset, put in training mode with a cumulative average (``momentum=None``)
and fed ``B`` batches; nothing else changes mode, and no gradient is taken. The statistics are
a pure function of the masked weights and the fixed batches, so the same masks always give the
same statistics (computed in IEEE float32 whatever the evaluation precision, as the calibration
statistics are), and :meth:`BatchNormRecalibration.restore` writes the dense ones back bit for
bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice

import torch
from torch import nn

from prunegym.tasks.devices import precision_context


class BatchNormRecalibration:
    """Re-estimates the BatchNorm statistics of ``model`` on ``count`` calibration batches.

    Args:
        model: The model whose BatchNorm buffers are rewritten in place.
        calibration_batches: Returns a fresh iterable of batches; the first ``count`` are used.
        forward: ``forward(model, batch)``.
        count: ``B``, the batches per re-estimation (> 0).

    Raises:
        ValueError: if the task has fewer than ``count`` calibration batches.
    """

    def __init__(
        self,
        model: nn.Module,
        calibration_batches: Callable[[], Iterable],
        forward: Callable[[nn.Module, object], torch.Tensor],
        count: int,
    ) -> None:
        self.model, self.forward = model, forward
        self.norms = [
            module
            for module in model.modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats
        ]
        self.batches = list(islice(calibration_batches(), count))
        if len(self.batches) < count:
            raise ValueError(
                f"bn_recalibration={count} needs {count} calibration batches; the task has "
                f"{len(self.batches)}"
            )
        self.dense = [
            {key: buffer.clone() for key, buffer in module.named_buffers(recurse=False)}
            for module in self.norms
        ]

    @torch.no_grad()
    def recalibrate(self) -> None:
        """Replace every BatchNorm's running statistics by those of the current (masked) model on
        the calibration batches."""
        saved = [(module.momentum, module.training) for module in self.norms]
        device = self.norms[0].running_mean.device
        with precision_context("fp32", device), torch.autocast(device.type, enabled=False):
            self._recalibrate(saved)

    def _recalibrate(self, saved) -> None:
        for module in self.norms:
            module.reset_running_stats()
            module.momentum = None  # a cumulative average over the B batches
            module.train()
        try:
            for batch in self.batches:
                self.forward(self.model, batch)
        finally:
            for module, (momentum, training) in zip(self.norms, saved, strict=True):
                module.momentum = momentum
                module.train(training)

    @torch.no_grad()
    def restore(self) -> None:
        """Write the dense model's statistics back bit for bit."""
        for module, dense in zip(self.norms, self.dense, strict=True):
            for key, buffer in module.named_buffers(recurse=False):
                buffer.copy_(dense[key])
