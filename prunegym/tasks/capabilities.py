"""Optional task capabilities, declared as protocols: a task has one when it defines the
methods (no base class needed), and the code that uses it asks with ``isinstance``.

- :class:`ChainEvaluation`: the model's evaluation is a chain of Linear layers, so the
  environment evaluates channel-pruned candidates as physically sliced chains.
- :class:`OutputEvaluation`: the metric is a function of the outputs on one fixed batch, so
  K channel-masked candidates run as one forward over K copies of the batch.
- :class:`CandidateEvaluation`: the task runs K masked candidates in one lockstep evaluation of
  its own (closed-loop episodes on a device).
- :class:`StackedEvaluation`: the task evaluates K parameter sets in one go.
- :class:`Reconstructs`: the task's picture is a reconstruction grid (autoencoders).
- :class:`PlaysEpisodes`: the task's picture is a played episode and its returns.

``prunegym.envs.check_task(task)`` verifies that the first three reproduce ``evaluate``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
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
class OutputEvaluation(Protocol):
    """``evaluate(model) == metrics_of_outputs(forward(model, evaluation_batch))``: the metric
    is a function of the model's outputs on one fixed batch, so the environment evaluates K
    channel-masked candidates as one forward over K copies of the batch
    (:class:`prunegym.pruning.channel.candidate_masks.CandidateMasks`)."""

    @property
    def evaluation_batch(self) -> object:
        """The evaluation data, as :meth:`prunegym.Task.forward` accepts it (a tensor, or a
        tuple whose first entry is the input tensor), on the task's device."""

    def metrics_of_outputs(self, outputs: torch.Tensor) -> dict[str, float]:
        """The metrics of ``forward``'s outputs on :attr:`evaluation_batch`."""


@runtime_checkable
class StackedOutputMetrics(Protocol):
    """An :class:`OutputEvaluation` task that scores K candidates' outputs at once (one device
    synchronisation instead of K)."""

    def metrics_of_stacked_outputs(self, outputs: torch.Tensor) -> list[dict[str, float]]:
        """``outputs`` ``(K, *shape)``: K candidates' outputs; K metric dicts, each equal to
        :meth:`OutputEvaluation.metrics_of_outputs` of its row."""


@runtime_checkable
class CandidateEvaluation(Protocol):
    """The task evaluates K channel-masked candidates in one lockstep run of its own (the
    TD-MPC episodes on a device), given a context in which the model computes all K."""

    #: Whether :meth:`evaluate_candidates` can be used now (it may depend on the task's options).
    batches_candidates: bool
    #: Rows one candidate feeds each forward (its episodes), for memory budgets.
    candidate_rows: int

    def evaluate_candidates(
        self, model: nn.Module, count: int, masked: Callable[[int], AbstractContextManager]
    ) -> list[dict[str, float]]:
        """K = ``count`` metric dicts. Inside ``masked(rows)``, a forward of ``model`` (dense
        weights) on ``rows`` rows (one copy of the data) or ``count·rows`` rows (candidate-
        major) computes the ``count`` candidates; each result equals ``evaluate`` of the masked
        model to float tolerance."""


@runtime_checkable
class StackedEvaluation(Protocol):
    """Evaluates K parameter sets of one model together. A task may set ``stacks_evaluation``
    to ``False`` when, in its current mode, it would only evaluate the sets one by one (or
    run modules whose state is more than their parameters): the environment then evaluates
    sequentially."""

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
