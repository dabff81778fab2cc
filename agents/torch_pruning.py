"""What a user would pick instead of prunegym: Torch-Pruning's own pruner and criteria.

Torch-Pruning's ``MetaPruner`` physically removes the channels its importance criterion ranks
lowest, across the whole network (``global_pruning=True``, the default) or layer by layer,
without compensation. The criteria (``importance=``):

- ``magnitude``: ``GroupMagnitudeImportance(p)`` (L2 by default), the default;
- ``lamp``: ``LAMPImportance`` (layer-adaptive magnitude);
- ``taylor``: ``GroupTaylorImportance`` on the gradient of the task loss summed over the
  calibration batches;
- ``hessian``: ``GroupHessianImportance`` (optimal brain damage) with each calibration batch's
  loss gradient as one sample of the empirical Fisher;
- ``bn-scale``: ``BNScaleImportance`` (network slimming's ``|γ|``; BatchNorm models only);
- ``fpgm``: ``FPGMImportance`` (filters near the geometric median go first).

Its ``pruning_ratio`` counts channels, not parameters, so the ratio is bisected until the
physically pruned model's parameter count is nearest the sparsity target. Only the final model
is evaluated, with the task's own metric, on a copy of the task's pretrained model; the
environment's model is not touched.
"""

from __future__ import annotations

import copy
import warnings
import weakref

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from prunegym.agents import TORCH_PRUNING_CRITERIA as IMPORTANCES
from prunegym.agents.base import Agent
from prunegym.agents.session import NotApplicable, Session
from prunegym.pruning.export import removed_fractions

_PRUNED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # task → {key: shapes}


def _shapes(model: nn.Module) -> nn.Module:
    """``model``, moved to the ``meta`` device: its parameters' shapes, without their data."""
    return model.to("meta")


def _parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _criterion(importance: str, p: int):
    """Torch-Pruning's importance object for a criterion name."""
    return {
        "magnitude": lambda: tp.importance.GroupMagnitudeImportance(p=p),
        "lamp": lambda: tp.importance.LAMPImportance(p=p),
        "taylor": tp.importance.GroupTaylorImportance,
        "hessian": tp.importance.GroupHessianImportance,
        "bn-scale": tp.importance.BNScaleImportance,
        "fpgm": lambda: tp.importance.FPGMImportance(p=p),
    }[importance]()


class TorchPruningBaseline(Agent):
    """Torch-Pruning's pruning at the env's sparsity target (1 evaluation).

    Args:
        importance: One of :data:`IMPORTANCES` (see the module docstring).
        global_pruning: Rank channels across the network (default) or prune each layer by the
            same ratio.
        p: Norm of the magnitude, LAMP and FPGM criteria (2: L2).
        max_pruning_ratio: Largest fraction of any layer's channels removed (0.95, as ``c_i``).
        bisections: Bisection steps on Torch-Pruning's channel ratio.
    """

    name = "torch-pruning"

    def __init__(
        self,
        importance: str = "magnitude",
        global_pruning: bool = True,
        p: int = 2,
        max_pruning_ratio: float = 0.95,
        bisections: int = 24,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if importance not in IMPORTANCES:
            raise ValueError(f"unknown importance {importance!r}; valid: {', '.join(IMPORTANCES)}")
        self.importance, self.global_pruning = importance, bool(global_pruning)
        self.p, self.max_pruning_ratio, self.bisections = p, max_pruning_ratio, bisections
        self._task = None

    def prune(self, dense: nn.Module, example_inputs, ignored, ratio: float) -> nn.Module:
        """A physically pruned copy of ``dense`` at Torch-Pruning channel ratio ``ratio``."""
        model = copy.deepcopy(dense)
        if ratio <= 0:
            return model
        importance = _criterion(self.importance, self.p)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pruner = tp.pruner.MetaPruner(
                model,
                example_inputs,
                importance=importance,
                global_pruning=self.global_pruning,
                pruning_ratio=ratio,
                max_pruning_ratio=self.max_pruning_ratio,
                ignored_layers=[dict(model.named_modules())[name] for name in ignored],
            )
            self._gradients(model, importance)
            try:
                pruner.step()
            except (AttributeError, TypeError) as error:  # a criterion with nothing to score
                raise NotApplicable(
                    f"Torch-Pruning's {self.importance!r} importance cannot rank this model's "
                    f"groups ({type(error).__name__}: {error})"
                ) from error
        return model

    def _gradients(self, model: nn.Module, importance) -> None:
        """The gradients ``taylor`` and ``hessian`` read: of the task loss on each calibration
        batch (summed for ``taylor``; one Fisher sample per batch for ``hessian``)."""
        if self.importance not in ("taylor", "hessian"):
            return
        task = self._task
        model.zero_grad(set_to_none=True)
        if self.importance == "hessian":
            importance.zero_grad()
        with torch.enable_grad():
            for batch in task.calibration_batches():
                if self.importance == "hessian":
                    model.zero_grad(set_to_none=True)
                try:
                    loss = task.loss(model, batch)
                except NotImplementedError as error:
                    raise NotApplicable(
                        f"importance {self.importance!r} needs the task's loss, and task "
                        f"{task.name!r} has none"
                    ) from error
                loss.backward()
                if self.importance == "hessian":
                    importance.accumulate_grad(model)

    def pruned_at_target(self, core) -> tuple[nn.Module, nn.Module]:
        """``(pruned, dense)``: the physically pruned copy of ``core``'s dense model (``core``:
        an unwrapped :class:`~prunegym.envs.prune_env.PruneEnv`) whose parameter sparsity is
        nearest its target, Torch-Pruning's channel ratio bisected, and the dense copy it was
        pruned from. No evaluation; ``core`` is untouched."""
        self._task = core.task
        if core.granularity != "channel":
            raise NotApplicable("Torch-Pruning removes channels: it needs granularity='channel'")
        dense, example_inputs, ignored = core.dense_copy()
        if self.importance == "bn-scale" and not any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in dense.modules()
        ):
            raise NotApplicable(
                "importance 'bn-scale' ranks channels by BatchNorm scales, but the model has no "
                "BatchNorm layer"
            )
        total = _parameter_count(dense)

        def sparsity(model: nn.Module) -> float:
            return 1.0 - _parameter_count(model) / total

        low, high = 0.0, 1.0
        best_ratio, best_gap = 0.0, abs(core.target)
        for _ in range(self.bisections):
            ratio = (low + high) / 2
            achieved = sparsity(self.prune(dense, example_inputs, ignored, ratio))
            if abs(achieved - core.target) < best_gap:
                best_ratio, best_gap = ratio, abs(achieved - core.target)
            if achieved < core.target:
                low = ratio
            else:
                high = ratio
        self.pruning_ratio = best_ratio
        return self.prune(dense, example_inputs, ignored, best_ratio).eval(), dense

    def allocation(self, core) -> np.ndarray:
        """``(m,)`` the fraction of each of ``core``'s groups that this criterion removes at
        ``core``'s target (the coefficients of :meth:`pruned_at_target`); no evaluation. The
        pruned shapes are remembered per task, target and settings, so warm starts that ask
        again (other seeds, other compensations of the same task) do not prune again."""
        key = (float(core.target), core.granularity, self.importance, self.global_pruning,
               self.p, self.max_pruning_ratio, self.bisections)  # fmt: skip
        remembered = _PRUNED.setdefault(core.task, {})
        if key not in remembered:
            pruned, dense = self.pruned_at_target(core)
            remembered[key] = (_shapes(pruned), _shapes(dense))
        pruned, dense = remembered[key]
        return removed_fractions(core.groups, dense, pruned)

    def solve(self, session: Session) -> None:
        core = session.env.unwrapped
        model, dense = self.pruned_at_target(core)
        info = core.evaluate_model(model, dense)
        info["feasible"] = bool(session.problem.in_window(info["sparsity"]))
        session.details.update(
            pruning_ratio=self.pruning_ratio,
            parameters_kept=_parameter_count(model),
            parameters_dense=_parameter_count(dense),
            importance=self.importance,
            global_pruning=self.global_pruning,
            note="Torch-Pruning's own ranking, no compensation; the env's criterion is unused",
        )
        session.observe(info.pop("coefficients"), info["reward"], info)
        self.pruned_model = model
