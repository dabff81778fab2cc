"""What a user would pick instead of prunegym: Torch-Pruning's own pruner, global magnitude.

Torch-Pruning's ``MetaPruner`` with ``GroupMagnitudeImportance(p=2)`` and
``global_pruning=True`` physically removes the channels with the smallest normalised group
norms across the whole network, without bias compensation. Its ``pruning_ratio`` counts
channels, not parameters, so the ratio is bisected until the physically pruned model's
parameter count is nearest the sparsity target. Only the final model is evaluated, with the
task's own metric, on a copy of the task's pretrained model; the environment's model is not
touched.
"""

from __future__ import annotations

import copy
import warnings

import torch_pruning as tp
from torch import nn

from prunegym.agents.base import Agent
from prunegym.agents.session import Session


def _parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class TorchPruningBaseline(Agent):
    """Torch-Pruning global magnitude pruning at the env's sparsity target (1 evaluation).

    Args:
        p: Norm of the magnitude importance (2: L2).
        max_pruning_ratio: Largest fraction of any layer's channels removed (0.95, as ``c_i``).
        bisections: Bisection steps on Torch-Pruning's channel ratio.
    """

    name = "torch-pruning"

    def __init__(
        self, p: int = 2, max_pruning_ratio: float = 0.95, bisections: int = 24, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.p, self.max_pruning_ratio, self.bisections = p, max_pruning_ratio, bisections

    def prune(self, dense: nn.Module, example_inputs, ignored, ratio: float) -> nn.Module:
        """A physically pruned copy of ``dense`` at Torch-Pruning channel ratio ``ratio``."""
        model = copy.deepcopy(dense)
        if ratio <= 0:
            return model
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pruner = tp.pruner.MetaPruner(
                model,
                example_inputs,
                importance=tp.importance.GroupMagnitudeImportance(p=self.p),
                global_pruning=True,
                pruning_ratio=ratio,
                max_pruning_ratio=self.max_pruning_ratio,
                ignored_layers=[dict(model.named_modules())[name] for name in ignored],
            )
            pruner.step()
        return model

    def solve(self, session: Session) -> None:
        problem = session.problem
        core = session.env.unwrapped
        dense, example_inputs, ignored = core.dense_copy()
        total = _parameter_count(dense)

        def sparsity(model: nn.Module) -> float:
            return 1.0 - _parameter_count(model) / total

        low, high = 0.0, 1.0
        best_ratio, best_gap = 0.0, abs(problem.target)
        for _ in range(self.bisections):
            ratio = (low + high) / 2
            achieved = sparsity(self.prune(dense, example_inputs, ignored, ratio))
            if abs(achieved - problem.target) < best_gap:
                best_ratio, best_gap = ratio, abs(achieved - problem.target)
            if achieved < problem.target:
                low = ratio
            else:
                high = ratio
        model = self.prune(dense, example_inputs, ignored, best_ratio).eval()
        info = core.evaluate_model(model, dense)
        info["feasible"] = bool(problem.in_window(info["sparsity"]))
        session.details.update(
            pruning_ratio=best_ratio,
            parameters_kept=_parameter_count(model),
            parameters_dense=total,
            note="Torch-Pruning's own ranking, no compensation; the env's criterion is unused",
        )
        session.observe(info.pop("coefficients"), info["reward"], info)
        self.pruned_model = model
