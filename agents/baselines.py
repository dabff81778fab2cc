"""Baseline allocations: uniform, norm-based (Sundaram et al., §V-A), LAMP-style and random."""

from __future__ import annotations

import numpy as np

from prunegym.agents.allocation import lamp_answer, norm_direction
from prunegym.agents.base import AskTellAgent
from prunegym.agents.result import Evaluation
from prunegym.agents.session import Problem, require_channel_groups


class _OneShot(AskTellAgent):
    """Evaluate one allocation, scaled onto the target with the exact sparsity count."""

    def direction(self, problem: Problem) -> np.ndarray:
        raise NotImplementedError

    def start(self, problem: Problem) -> None:
        self.pending = problem.to_target(self.direction(problem))

    def ask(self) -> np.ndarray | None:
        pending, self.pending = self.pending, None
        return pending

    def tell(self, candidates: np.ndarray, evaluations: list[Evaluation]) -> None:
        pass


class Fixed(_OneShot):
    """Evaluate given coefficients as they are (one evaluation), e.g. a previous result."""

    name = "manual"

    def __init__(self, coefficients, **kwargs) -> None:
        super().__init__(**kwargs)
        self.coefficients = np.asarray(coefficients, dtype=np.float64)

    def start(self, problem: Problem) -> None:
        values = self.coefficients
        if values.shape == (1,):
            values = np.repeat(values, problem.size)
        self.pending = problem.check(values)


class Uniform(_OneShot):
    """The same coefficient for every group, chosen so the exact sparsity is nearest the
    target (one evaluation)."""

    name = "uniform"

    def direction(self, problem: Problem) -> np.ndarray:
        return np.ones(problem.size)


class NormBased(_OneShot):
    """The paper's norm-based allocation: ``c_i ∝ 1/‖w_i‖``, where ``‖w_i‖`` is the mean
    per-channel L2 norm of group ``i`` in the dense model, so groups with smaller weights are
    pruned more; scaled onto the target (one evaluation)."""

    name = "norm"

    def direction(self, problem: Problem) -> np.ndarray:
        return norm_direction(problem.group_norms)


class LAMPAllocation(_OneShot):
    """One global threshold on LAMP-normalised scores of the environment's criterion, per
    parameter (:func:`lamp_allocation`); one evaluation. Unlike ``torch-pruning-lamp`` it
    ranks with the environment's criterion and keeps its compensation."""

    name = "lamp"

    def start(self, problem: Problem) -> None:
        core = problem.core
        require_channel_groups(core, "lamp")
        self.pending = lamp_answer(core, problem.target)


class RandomSearch(AskTellAgent):
    """Random allocations that meet the target: a direction drawn uniformly from ``[0, 1]^m``,
    scaled onto the target. Keeps the best of ``samples`` draws (or of the budget).

    Args:
        samples: Draws to evaluate; ``None`` runs until the budget is spent.
        seed: Seed of the draws.
    """

    name = "random"

    def __init__(self, samples: int | None = None, seed: int | None = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        if samples is not None and (isinstance(samples, bool) or samples < 1):
            raise ValueError(f"random samples must be a positive integer, got {samples!r}")
        self.samples, self.seed = samples, seed
        self.terminates = samples is not None

    def start(self, problem: Problem) -> None:
        self.problem = problem
        self.rng = np.random.default_rng(self.seed)
        self.drawn = 0

    def ask(self) -> np.ndarray | None:
        if self.samples is not None and self.drawn >= self.samples:
            return None
        self.drawn += 1
        return self.problem.to_target(self.rng.uniform(0.0, 1.0, self.problem.size))

    def tell(self, candidates: np.ndarray, evaluations: list[Evaluation]) -> None:
        pass
