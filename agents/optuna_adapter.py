"""Any ask/tell optimizer as a pruning solver, shown with Optuna (TPE and CMA-ES samplers).

Optuna proposes ``c`` through ``study.ask()``; the target is enforced either by *repair* (the
proposal is read as a direction and scaled onto the target with the exact sparsity count, so
every evaluation sits in the window) or by *penalty* (the proposal is evaluated as is and
scored with the composite objective ``metric_n − μ·(s − ρ)²``). Optuna is told the negative
composite objective of what was evaluated in both cases.
"""

from __future__ import annotations

import numpy as np
import optuna

from prunegym.agents.base import AskTellAgent
from prunegym.agents.result import Evaluation
from prunegym.agents.session import Problem

SAMPLERS = ("tpe", "cmaes")
CONSTRAINTS = ("repair", "penalty")


class OptunaAgent(AskTellAgent):
    """Optuna's TPE or CMA-ES sampler, driven through ``study.ask`` / ``study.tell``.

    Args:
        sampler: ``"tpe"`` or ``"cmaes"``.
        constraint: ``"repair"`` (scale every proposal onto the target) or ``"penalty"``.
        seed: Sampler seed.
        sampler_options: Extra keyword arguments for the Optuna sampler.
    """

    terminates = False

    def __init__(
        self,
        sampler: str = "tpe",
        constraint: str = "repair",
        seed: int | None = 0,
        sampler_options: dict | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown Optuna sampler {sampler!r}; choose one of {SAMPLERS}")
        if constraint not in CONSTRAINTS:
            raise ValueError(f"unknown constraint {constraint!r}; choose one of {CONSTRAINTS}")
        self.sampler, self.constraint, self.seed = sampler, constraint, seed
        self.sampler_options = dict(sampler_options or {})
        self.name = f"optuna-{sampler}"

    def start(self, problem: Problem) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if self.sampler == "tpe":
            sampler = optuna.samplers.TPESampler(seed=self.seed, **self.sampler_options)
        else:
            sampler = optuna.samplers.CmaEsSampler(seed=self.seed, **self.sampler_options)
        self.problem = problem
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self.trial = None

    def ask(self) -> np.ndarray:
        self.trial = self.study.ask()
        proposal = np.array(
            [
                self.trial.suggest_float(f"c{i}", 0.0, self.problem.upper)
                for i in range(self.problem.size)
            ]
        )
        if self.constraint == "repair":
            return self.problem.to_target(proposal)
        return proposal

    def tell(self, candidates: np.ndarray, evaluations: list[Evaluation]) -> None:
        evaluation = evaluations[0]
        score = -self.problem.objective(evaluation.metric, evaluation.sparsity)
        self.study.tell(self.trial, score)
