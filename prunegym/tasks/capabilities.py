"""Optional task capabilities, declared as protocols: a task has one when it defines the
methods (no base class needed), and the code that uses it asks with ``isinstance``.

- :class:`ChainEvaluation`: the model's evaluation is a chain of Linear layers, so the
  environment evaluates channel-pruned candidates as physically sliced chains.
- :class:`StackedEvaluation`: the task evaluates K parameter sets in one go.
- :class:`Reconstructs`: the task's picture is a reconstruction grid (autoencoders).
- :class:`PlaysEpisodes`: the task's picture is a played episode and its returns.

``prunegym.envs.check_task(task)`` verifies that the first two reproduce ``evaluate``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn


@runtime_checkable
class ChainEvaluation(Protocol):
    """``evaluate(model) == metrics_of_outputs(chain(inputs))`` for a chain of modules."""

    def evaluation_chain(self, model: nn.Module) -> tuple[torch.Tensor, list[nn.Module]]:
        """``(inputs, modules)``: applying ``modules`` (``nn.Linear`` layers of ``model`` and
        elementwise activations) in order to ``inputs`` ``(N, features)`` gives the outputs
        that :meth:`metrics_of_outputs` scores."""

    def metrics_of_outputs(self, outputs: torch.Tensor) -> dict[str, float]:
        """The metrics of the chain's outputs, equal to ``evaluate``'s."""


@runtime_checkable
class StackedEvaluation(Protocol):
    """Evaluates K parameter sets of one model together."""

    def evaluate_stacked(
        self, model: nn.Module, parameters: dict[str, torch.Tensor]
    ) -> list[dict[str, float]]:
        """``parameters`` maps every parameter name of ``model`` to a ``(K, *shape)`` stack
        (on the model's device); returns K metric dicts, each equal (to float tolerance) to
        ``evaluate`` of ``model`` holding that set. ``model`` itself is not modified."""


@runtime_checkable
class Reconstructs(Protocol):
    """An autoencoder task: its picture shows originals and reconstructions."""

    eval_images: torch.Tensor

    def reconstruct(self, model: nn.Module) -> torch.Tensor:
        """``model``'s reconstructions of ``eval_images`` (same shape)."""


@runtime_checkable
class PlaysEpisodes(Protocol):
    """A closed-loop task: its picture shows an episode and the returns per episode."""

    def episode_returns(self, model: nn.Module) -> np.ndarray:
        """``(episodes,)`` returns of ``model`` on the search episodes."""

    def episode_frames(self, model: nn.Module, episode: int = 0) -> tuple[list, float]:
        """Frames of one search episode played by ``model``, and its return."""
