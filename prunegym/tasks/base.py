"""The Task contract: a pretrained model, its data and its metric, knowing nothing of pruning."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from prunegym.tasks.devices import move_to, resolve_device
from prunegym.tasks.intervals import mean_ci95, paired_difference


class Task:
    """Base class for a pruning task.

    A task owns a pretrained model, the data to calibrate and evaluate it, and a metric. It knows
    nothing about pruning or Gymnasium. Subclasses fill in the members below; a new task for a
    user's own model is about 30 lines (see ``prunegym/tasks/toy.py``). Optional capabilities
    (faster batched evaluation, pictures) are protocols in :mod:`prunegym.tasks.capabilities`.

    Class attributes:
        name: Short identifier, used by the CLI and in result files.
        metric: Key of the main metric in the dict returned by :meth:`evaluate`.
        higher_is_better: Whether a larger main metric is better (PSNR: True, loss: False).
        metric_scale: Typical spread of the main metric between a useless and the dense model,
            in the metric's units. ``PruneEnv`` divides the metric's distance from the dense
            value by it, so that rewards of different tasks have similar scale.
        output_kind: What :meth:`forward` returns, which says how far a pruned model's outputs
            are from the dense model's (``PruneEnv.calibration_distortion``): ``"values"``
            (default; the mean squared difference) or ``"logits"`` (class scores over the last
            dimension; the mean Kullback–Leibler divergence of the pruned model's softmax from
            the dense model's).
    """

    name: str = "task"
    metric: str = "metric"
    higher_is_better: bool = True
    metric_scale: float = 1.0
    output_kind: str = "values"
    #: Held-out test episodes, for tasks whose metric is a mean over random episodes (closed-loop
    #: returns); 0 (the default) for deterministic metrics. Solvers search on the episodes of
    #: :meth:`evaluate`; the chosen result is then scored on these others
    #: (:meth:`test_episode_metrics`), so that selection does not inflate its score.
    test_episodes: int = 0
    #: Where the task's evaluation and calibration data live (:meth:`to`); the environment puts
    #: its model there too. ``cpu`` unless moved.
    device: torch.device = torch.device("cpu")

    def build_model(self) -> nn.Module:
        """Return a fresh pretrained model in eval mode (loads the shipped checkpoint), on the
        CPU; :meth:`load_model` puts it on :attr:`device`."""
        raise NotImplementedError

    def load_model(self) -> nn.Module:
        """A copy of :meth:`build_model` on the task's :attr:`device` (copied first: a
        ``build_model`` that returns a module it keeps is never moved or changed)."""
        return copy.deepcopy(self.build_model()).to(self.device)

    def to(self, device: str | torch.device | None) -> Task:
        """Put the task's data on ``device`` (``cpu``, ``cuda``, ``cuda:N`` or ``auto``), once:
        every tensor and module among its attributes (in lists, tuples, dicts and dataclasses
        too) is moved. Returns the task. Override it when a task keeps device data elsewhere.

        Raises:
            ValueError: if the device does not exist here (the message lists those that do).
        """
        device = resolve_device(device)
        if device != self.device:
            for key, value in list(vars(self).items()):
                setattr(self, key, move_to(value, device))
            self.device = device
        return self

    def components(self, model: nn.Module) -> dict[str, nn.Module]:
        """Map component names to submodules of ``model``, e.g. ``{"encoder": model.encoder}``.

        Every parameterised layer that should be prunable must sit inside one component.
        """
        raise NotImplementedError

    @property
    def example_inputs(self) -> torch.Tensor | tuple:
        """A small input batch used to trace the model for the dependency graph."""
        raise NotImplementedError

    def output_layers(self, model: nn.Module) -> list[nn.Module] | None:
        """Layers whose output width is fixed by the task (never pruned).

        ``None`` (the default) means the last Linear or convolution in module order.
        """
        return None

    def calibration_batches(self) -> Iterable:
        """Batches used for importance scores and bias-compensation statistics.

        Each batch is whatever :meth:`forward` accepts (a tensor for simple models).
        """
        raise NotImplementedError

    def forward(self, model: nn.Module, batch) -> torch.Tensor:
        """Run ``model`` on one calibration batch and return its output tensor."""
        return model(batch)

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        """Scalar training loss on one batch; needed by gradient-based criteria (``taylor``)."""
        raise NotImplementedError(
            f"task {self.name!r} defines no loss(); criterion 'taylor' needs one"
        )

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Evaluate ``model`` on the task's evaluation data.

        Returns:
            A dict of metric names to floats; it contains ``self.metric``.
        """
        raise NotImplementedError

    # -- optional: metrics that are means over random episodes ----------------------------------
    def test_episode_metrics(self, model: nn.Module) -> np.ndarray:
        """The main metric of each held-out test episode, ``(test_episodes,)`` float64, episode
        ``i`` always from the same seed, none of them among :meth:`evaluate`'s episodes.
        Needed when :attr:`test_episodes` > 0."""
        raise NotImplementedError

    def summarize_test(self, values: np.ndarray, dense_values: np.ndarray) -> dict[str, float]:
        """Summary of per-episode test metrics ``values`` against the dense model's on the same
        episodes: ``<metric>`` (the mean), ``<metric>_ci95`` (half-width of its 95 %
        interval), ``episodes``, and the paired difference from the dense model
        ``<metric>_vs_dense`` with ``<metric>_vs_dense_ci95`` (:mod:`prunegym.tasks.intervals`)."""
        mean, half_width = mean_ci95(values)
        delta, delta_half_width = paired_difference(values, dense_values)
        name = self.metric
        return {
            name: mean,
            f"{name}_ci95": half_width,
            "episodes": float(len(values)),
            f"{name}_vs_dense": delta,
            f"{name}_vs_dense_ci95": delta_half_width,
        }

    def options(self) -> dict[str, object]:
        """The constructor arguments that rebuild this task: ``make_task(name, **options)``.

        Result files record them so that ``prunegym validate`` re-creates the same task. Values
        are JSON-serialisable (paths as strings); arguments left at ``None`` are omitted.
        """
        return {}

    def describe(self) -> Mapping[str, object]:
        """Short facts about the task for tables and result files."""
        return {"name": self.name, "metric": self.metric, "higher_is_better": self.higher_is_better}


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 (hex) of a model's state dict: every entry's name, dtype, shape and bytes, in
    name order. Identical weights give the same hash however the checkpoint file was written."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
