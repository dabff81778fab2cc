"""Finite-difference gradient descent with momentum (Sundaram et al., §IV-D b and §V-A).

The objective is the paper's composite ``J(c) = −metric_n + μ·(s(c) − ρ)²`` with
``metric_n = sign·(metric − dense)/scale`` (see :meth:`Problem.objective`). Its gradient is
estimated by central differences, one pair per coefficient, with a step of at least one
channel per group (the mask is a step function of ``c``: a smaller step gives a zero
difference). Each iteration costs up to ``2m + 1`` evaluations; coefficient vectors that mask
the same channels as an earlier one are answered from the cache for free.

Two phases:

1. **Ascent** (the paper's procedure). Start from ``c = 0`` (``warm_start="none"``) and
   descend ``J`` with momentum, never lowering a coefficient (``monotone=True``), until the
   sparsity window is reached. A step that would overshoot the window is shortened, using the
   exact sparsity count (no evaluation). If the ascent stalls outside the window, ``μ`` is
   multiplied by 4.
2. **Refinement** (``refine=True``). At constant sparsity: the gradient is projected onto the
   level set of ``s(c)``, a momentum step is taken, and the result is moved back onto the
   target along the sparsity gradient. This reallocates pruning from groups where it hurts to
   groups where it does not. It stops after ``patience`` iterations without improvement.

A warm start (``warm_start="torch-pruning"``, or one criterion such as ``warm_start="lamp"``)
replaces the ascent: Torch-Pruning's criteria each choose an allocation at the target (the
fraction of every group they remove, no evaluation), those in the window are evaluated
(charged to the budget), and the refinement starts from the best of them (with
``refine=False`` that best is the answer). The channels within each group are then the env
criterion's, not Torch-Pruning's. If no allocation lands in the window (a criterion that
cannot rank the model, or prunes nothing), the ascent runs from ``c = 0`` as usual;
``details["warm_starts"]`` says how many there were, ``details["warm_start_skipped"]`` why
the others were left out.
"""

from __future__ import annotations

import numpy as np

from prunegym.agents.base import AskTellAgent
from prunegym.agents.result import Evaluation
from prunegym.agents.session import Problem


class FDMomentum(AskTellAgent):
    """Central-difference gradient descent with momentum on the pruning coefficients.

    Args:
        learning_rate: Step size of the ascent phase (coefficient units per unit of ``J``).
        refine_rate: Step size of the refinement phase.
        momentum: Momentum factor ``β`` of ``v ← β·v − lr·g``.
        penalty: ``μ`` of the sparsity penalty; ``None`` uses the env's ``penalty``.
        channels: Difference step in channels per group (``h_i = channels / n_i``).
        max_step: Largest change of one coefficient per iteration.
        monotone: Never lower a coefficient during the ascent (the paper's constraint).
        refine: Run the constant-sparsity refinement after the window is reached.
        patience: Refinement iterations without improvement before stopping.
        max_iterations: Hard cap on iterations (both phases).
        warm_start: ``"none"`` (the paper: the ascent from ``c = 0``), ``"torch-pruning"``
            (the best of Torch-Pruning's criteria's allocations), or one criterion's name (see
            the module docstring).
    """

    name = "fd-momentum"

    def __init__(
        self,
        learning_rate: float = 0.004,
        refine_rate: float = 0.05,
        momentum: float = 0.9,
        penalty: float | None = None,
        channels: int = 1,
        max_step: float = 0.05,
        monotone: bool = True,
        refine: bool = True,
        patience: int = 4,
        max_iterations: int = 200,
        warm_start: str = "none",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        from prunegym.agents import TORCH_PRUNING_CRITERIA

        if warm_start not in ("none", "torch-pruning", *TORCH_PRUNING_CRITERIA):
            raise ValueError(
                f"fd-momentum warm_start must be 'none', 'torch-pruning' or one of "
                f"{', '.join(TORCH_PRUNING_CRITERIA)}; got {warm_start!r}"
            )
        self.warm_start = warm_start
        for name, value in (
            ("learning_rate", learning_rate),
            ("refine_rate", refine_rate),
            ("max_step", max_step),
        ):
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"fd-momentum {name} must be > 0, got {value!r}")
        if penalty is not None and not penalty >= 0:
            raise ValueError(f"fd-momentum penalty must be >= 0, got {penalty!r}")
        if not 0 <= momentum < 1:
            raise ValueError(f"fd-momentum momentum must be in [0, 1), got {momentum!r}")
        if channels < 1 or max_iterations < 1 or patience < 1:
            raise ValueError("fd-momentum channels, patience and max_iterations must be >= 1")
        self.learning_rate, self.refine_rate, self.momentum = learning_rate, refine_rate, momentum
        self.penalty, self.channels, self.max_step = penalty, channels, max_step
        self.monotone, self.refine = monotone, refine
        self.patience, self.max_iterations = patience, max_iterations

    # -- ask/tell -----------------------------------------------------------------------------
    def start(self, problem: Problem) -> None:
        self.problem = problem
        self.mu = problem.penalty if self.penalty is None else float(self.penalty)
        self.h = problem.channel_steps(self.channels)
        self.c = np.zeros(problem.size)
        self.velocity = np.zeros(problem.size)
        self.seeds = self._warm_starts(problem)
        self.phase = "seed" if len(self.seeds) else "ascent"
        self.iteration = 0
        self.stalled = 0
        self.best_objective = np.inf
        self.since_best = 0
        self.trace: list[dict] = []

    def _warm_starts(self, problem: Problem) -> np.ndarray:
        """``(k, m)`` the allocations of the ``warm_start`` criteria that land in the window."""
        if self.warm_start == "none":
            return np.zeros((0, problem.size))
        from prunegym.agents import TORCH_PRUNING_CRITERIA
        from prunegym.agents.torch_pruning import TorchPruningBaseline  # Torch-Pruning: lazily

        names = TORCH_PRUNING_CRITERIA if self.warm_start == "torch-pruning" else [self.warm_start]
        rows, skipped = [], {}
        for name in names:
            try:
                row = TorchPruningBaseline(importance=name, progress=False).allocation(problem.core)
            except Exception as error:  # noqa: BLE001  (optional: a failed start is skipped)
                skipped[name] = f"{type(error).__name__}: {error}"
                continue
            row = np.clip(row, 0.0, problem.upper)
            sparsity = float(problem.sparsity(row))
            if problem.in_window(sparsity):
                rows.append(row)
            else:
                skipped[name] = f"its allocation's sparsity {sparsity:.4f} is outside the window"
        starts = np.unique(np.asarray(rows).reshape(-1, problem.size), axis=0)
        self.session.details.update(warm_starts=len(starts), warm_start_skipped=skipped)
        return starts

    def _probes(self) -> np.ndarray:
        """Rows: the centre, then ``c + h_i e_i`` and ``c − h_i e_i`` for each ``i``."""
        upper = self.problem.upper
        eye = np.diag(self.h)
        plus = np.clip(self.c + eye, 0.0, upper)
        minus = np.clip(self.c - eye, 0.0, upper)
        return np.vstack([self.c[None], plus, minus])

    def ask(self) -> np.ndarray | None:
        if self.phase == "seed":
            return self.seeds
        if self.phase == "done" or self.iteration >= self.max_iterations:
            return None
        return self._probes()

    def tell(self, candidates: np.ndarray, evaluations: list[Evaluation]) -> None:
        problem, size = self.problem, self.problem.size
        objectives = np.array(
            [problem.objective(e.metric, e.sparsity, self.mu) for e in evaluations]
        )
        if self.phase == "seed":  # the best warm start by metric (all are in the window)
            metrics = [problem.objective(e.metric, e.sparsity, 0.0) for e in evaluations]
            self.c = candidates[int(np.argmin(metrics))].copy()
            self.phase = "refine" if self.refine else "done"
            self.best_objective = np.inf
            self._finish()
            return
        centre = evaluations[0]
        plus, minus = candidates[1 : size + 1], candidates[size + 1 :]
        spread = np.diag(plus - minus)
        gradient = np.where(
            spread > 0,
            (objectives[1 : size + 1] - objectives[size + 1 :]) / np.maximum(spread, 1e-12),
            0.0,
        )
        self.iteration += 1
        self.trace.append(
            {
                "iteration": self.iteration,
                "phase": self.phase,
                "coefficients": self.c.tolist(),
                "objective": float(objectives[0]),
                "metric": centre.metric,
                "sparsity": centre.sparsity,
                "mu": self.mu,
            }
        )
        if self.phase == "ascent":
            self._ascent_step(centre, gradient)
        else:
            self._refine_step(centre, gradient)
        self._finish()

    # -- phases -------------------------------------------------------------------------------
    def _ascent_step(self, centre: Evaluation, gradient: np.ndarray) -> None:
        problem = self.problem
        if problem.in_window(centre.sparsity):
            self.phase = "refine" if self.refine else "done"
            self.velocity[:] = 0.0
            self.best_objective = np.inf
            if self.refine:
                self._refine_step(centre, gradient)
            return
        if centre.sparsity > problem.target + problem.tolerance:
            self.phase = "done"  # overshoot can only happen with monotone=False
            return
        self.velocity = self.momentum * self.velocity - self.learning_rate * gradient
        step = np.clip(self.velocity, -self.max_step, self.max_step)
        if self.monotone:
            step = np.maximum(step, 0.0)
        proposal = self._shorten(self.c, step)
        if np.array_equal(problem.counts(proposal), problem.counts(self.c)):
            self.stalled += 1
            if np.all(self.c >= problem.upper):
                self.phase = "done"  # nothing left to prune: the window is out of reach
            elif self.stalled >= 2:
                self.mu *= 4.0
                self.velocity[:] = 0.0
                self.stalled = 0
        else:
            self.stalled = 0
        self.c = proposal

    def _shorten(self, c: np.ndarray, step: np.ndarray) -> np.ndarray:
        """``c + t·step`` with the largest ``t ∈ [0, 1]`` whose sparsity stays ≤ ρ + ε;
        aims at ρ when the full step would overshoot the window."""
        problem = self.problem
        full = np.clip(c + step, 0.0, problem.upper)
        if problem.sparsity(full) <= problem.target + problem.tolerance:
            return full
        ts = np.linspace(0.0, 1.0, 201)
        rows = np.clip(c + ts[:, None] * step, 0.0, problem.upper)
        sparsity = problem.sparsity(rows)
        best = int(np.argmin(np.abs(sparsity - problem.target)))
        return rows[best]

    def _ds_dc(self) -> np.ndarray:
        """Exact-count central difference of the sparsity, ``(m,)`` (no evaluation)."""
        problem = self.problem
        eye = np.diag(self.h)
        plus = np.clip(self.c + eye, 0.0, problem.upper)
        minus = np.clip(self.c - eye, 0.0, problem.upper)
        spread = np.maximum(np.diag(plus - minus), 1e-12)
        return (problem.sparsity(plus) - problem.sparsity(minus)) / spread

    def _refine_step(self, centre: Evaluation, gradient: np.ndarray) -> None:
        problem = self.problem
        objective = problem.objective(centre.metric, centre.sparsity, 0.0)
        if centre.feasible and objective < self.best_objective - 1e-9:
            self.best_objective, self.since_best = objective, 0
        else:
            self.since_best += 1
            if self.since_best >= self.patience:
                self.phase = "done"
                return
        slope = self._ds_dc()
        tangent = gradient - (gradient @ slope) / max(slope @ slope, 1e-18) * slope
        self.velocity = self.momentum * self.velocity - self.refine_rate * tangent
        step = np.clip(self.velocity, -self.max_step, self.max_step)
        moved = np.clip(self.c + step, 0.0, problem.upper)
        self.c = self._onto_target(moved, slope)

    def _onto_target(self, c: np.ndarray, slope: np.ndarray) -> np.ndarray:
        """Move ``c`` along the sparsity gradient to the exact sparsity nearest ρ."""
        problem = self.problem
        direction = slope / max(np.abs(slope).max(), 1e-18)
        ts = np.linspace(-0.3, 0.3, 601)
        rows = np.clip(c + ts[:, None] * direction, 0.0, problem.upper)
        gaps = np.abs(problem.sparsity(rows) - problem.target)
        return rows[int(np.argmin(gaps + 1e-9 * np.abs(ts)))]

    def _finish(self) -> None:
        self.session.details.update(
            iterations=self.iteration, final_penalty=self.mu, trace=self.trace
        )
