"""The solver's view of a PruneEnv: a read-only problem description and a metered evaluator.

Solvers talk to the environment only through :class:`Problem` (sizes, bounds, the target and
exact sparsity of candidate coefficients, computed without evaluating the model) and
:class:`Session` (``env.step`` and ``evaluate_batch`` under a budget, with history and a
progress bar). Both use only the environment's public API, so ``gym.make``-wrapped environments
work. The environment's cache answers masks seen before; those answers cost no budget.
"""

from __future__ import annotations

import math
import sys
import time

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from prunegym.agents import provenance
from prunegym.agents.result import Budget, Evaluation, Result
from prunegym.agents.specs import spec_folder_name


def usable_metric(metric: float, sign: float) -> bool:
    """Whether ``metric`` can count: not NaN and not infinitely bad (``sign`` is 1 when higher
    is better). An infinitely good one, the PSNR of an exact reconstruction, counts."""
    return not math.isnan(metric) and sign * metric != -math.inf


def meets_floor(metric: float, sign: float, floor: float | None) -> bool:
    """Whether ``metric`` can count and is no worse than ``floor`` (any, when ``None``)."""
    return usable_metric(metric, sign) and (floor is None or sign * (metric - floor) >= 0)


class BudgetExhausted(Exception):
    """Raised by :meth:`Session.evaluate` when no evaluation or time is left."""


class NotApplicable(ValueError):
    """A solver cannot work on this environment at all (e.g. a BatchNorm criterion on a model
    without BatchNorm); ``prunegym bench`` records such a baseline as not applicable."""


def require_channel_groups(core, solver: str) -> None:
    """Raise :class:`NotApplicable` in one line unless ``core`` (a ``PruneEnv``) prunes at
    channel granularity, the only one ``solver`` works on."""
    if core.granularity != "channel":
        raise NotApplicable(
            f"{solver} works on channel groups: use channel granularity "
            "(granularity='channel', --granularity channel)"
        )


class Problem:
    """Read-only facts about the pruning problem of one environment.

    Attributes:
        size: ``m``, the number of coefficients.
        channels: ``(m,)`` int64, channels ``n_i`` per group.
        upper: Largest coefficient (0.95).
        target, tolerance: The sparsity window ``ρ ± ε`` (fractions).
        max_sparsity: Exact sparsity at ``c = upper·1``.
        group_norms: ``(m,)`` mean per-channel L2 norm of each group in the dense model.
        sign: +1 if a higher metric is better, −1 otherwise.
        metric_scale: The task's metric normalisation (e.g. 10 dB).
        dense_metric: The dense model's metric.
    """

    def __init__(self, env: gym.Env) -> None:
        core = env.unwrapped
        self._core = core
        #: The unwrapped :class:`PruneEnv`, for solvers that read more than these facts (its
        #: group features); a solver must not step it outside the session.
        self.core = core
        self.size = int(core.action_space.shape[0])
        self.channels = np.asarray(core.channels, dtype=np.int64)
        self.upper = float(core.action_space.high.max())
        self.target = float(core.target)
        self.tolerance = float(core.tolerance)
        self.max_sparsity = float(core.max_sparsity)
        self.group_norms = np.asarray(core.dense_group_norms, dtype=np.float64)
        self.sign = 1.0 if core.task.higher_is_better else -1.0
        self.metric_scale = float(core.task.metric_scale)
        self.dense_metric = float(core.dense_metric)
        self.penalty = float(core.penalty)
        self.metric_names = tuple(core.dense_metrics)

    @property
    def reachable(self) -> bool:
        """Whether some coefficients reach the window (``max_sparsity ≥ ρ − ε``)."""
        return self.max_sparsity >= self.target - self.tolerance

    def sparsity(self, coefficients: np.ndarray) -> np.ndarray:
        """Exact sparsity of ``(m,)`` or ``(K, m)`` coefficients, no model evaluation."""
        return np.asarray(self._core.sparsity_of(np.clip(coefficients, 0.0, self.upper)))

    def sparsity_estimate(self, coefficients: np.ndarray) -> np.ndarray:
        """The paper's estimate ``Σ c_i s_i / ‖θ‖₀`` (eq. 1b) of ``(m,)`` or ``(K, m)``."""
        return np.asarray(self._core.sparsity_estimate_of(coefficients))

    def counts(self, coefficients: np.ndarray) -> np.ndarray:
        return np.asarray(self._core.pruned_counts(np.clip(coefficients, 0.0, self.upper)))

    def in_window(self, sparsity: np.ndarray | float) -> np.ndarray:
        return np.abs(np.asarray(sparsity) - self.target) <= self.tolerance + 1e-12

    def channel_steps(self, channels: int = 1) -> np.ndarray:
        """``(m,)`` coefficient change that moves ``channels`` channels in each group."""
        return channels / self.channels

    def to_target(self, direction: np.ndarray, resolution: int = 2001) -> np.ndarray:
        """Scale a non-negative direction ``d`` to ``c = clip(α·d, 0, upper)`` whose exact
        sparsity is closest to the target (smallest ``α`` on ties); the uniform allocation is
        ``to_target(ones)``. Needs no model evaluation."""
        direction = np.asarray(direction, dtype=np.float64)
        if direction.shape != (self.size,) or not np.all(np.isfinite(direction)):
            raise ValueError(f"direction must be finite with shape ({self.size},)")
        direction = np.clip(direction, 0.0, None)
        if direction.max() <= 0:
            direction = np.ones(self.size)
        positive = direction[direction > 0]
        low, high = 0.0, self.upper / positive.min()
        for _ in range(3):  # coarse sweep, then two zooms around the best scale
            scales = np.linspace(low, high, resolution)
            candidates = np.clip(scales[:, None] * direction, 0.0, self.upper)
            best = int(np.argmin(np.abs(self.sparsity(candidates) - self.target)))
            low = scales[max(best - 1, 0)]
            high = scales[min(best + 1, resolution - 1)]
        return candidates[best]

    def check(self, coefficients) -> np.ndarray:
        """Validate coefficients ``(m,)`` as the environment's step does; float64 ``(m,)``."""
        return self._core.check_action(coefficients)

    def rank(self, evaluation: Evaluation) -> tuple[int, float]:
        """How a run's result ranks ``evaluation`` (larger is better): feasible ones (in the
        window) by their metric alone, above the others, which rank by reward."""
        if evaluation.feasible:  # +inf (a perfect PSNR) is the best; NaN the worst
            value = self.sign * evaluation.metric
            return 1, -math.inf if math.isnan(value) else value
        return 0, evaluation.reward if math.isfinite(evaluation.reward) else -math.inf

    def objective(self, metric, sparsity, penalty: float | None = None):
        """The composite objective to minimise (§IV-D b): exactly ``−reward`` of the
        environment (``penalty`` overrides ``μ``), i.e. ``−clip(σ·(metric − dense)/scale,
        −10, 10) + μ·(sparsity − ρ)²``."""
        return -self._core.reward(metric, sparsity, penalty)


class Session:
    """Runs evaluations for one solver run: budget, history, cache, best and progress bar.

    Evaluations of coefficients that mask exactly the same channels as an earlier evaluation
    of the run are answered by the environment's cache (cleared when the session starts) and
    do not count against the budget.

    Args:
        env: The environment (possibly wrapped).
        budget: The run's budget.
        solver: Name for the result and the progress bar.
        metric_floor: Optional: evaluations whose metric is worse than this are infeasible.
        progress: Show a tqdm bar on stderr.
        writer: Optional TensorBoard writer: each charged evaluation's reward, metric,
            sparsity and the best metric so far, against the evaluation count.
    """

    def __init__(
        self,
        env: gym.Env,
        budget: Budget,
        solver: str,
        metric_floor: float | None = None,
        progress: bool = True,
        writer=None,
    ) -> None:
        self.env, self.budget, self.solver = env, budget, solver
        self.writer = writer
        self.problem = Problem(env)
        self.metric_floor = metric_floor
        self.history: list[Evaluation] = []
        self.best: Evaluation | None = None
        self.message = ""
        self.details: dict = {}
        self.lookups, self.hits = 0, 0  # requests, and those answered without a forward pass
        self.started = time.perf_counter()
        self.bar = tqdm(
            total=budget.evaluations,
            desc=solver,
            unit="eval",
            file=sys.stderr,
            disable=not progress,
            leave=False,
            dynamic_ncols=True,
            mininterval=0.5,
        )
        self._needs_reset = True
        # Every run pays for its own evaluations: its counts never depend on what ran before
        # on the same environment. Within the run, the environment's cache makes repeats free.
        env.unwrapped.clear_cache()

    # -- budget -------------------------------------------------------------------------------
    @property
    def evaluations(self) -> int:
        return len(self.history)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def exhausted(self) -> bool:
        budget = self.budget
        if budget.evaluations is not None and self.evaluations >= budget.evaluations:
            return True
        # the clock never stops the first evaluation (or batch): every run has a result
        return (
            budget.seconds is not None and self.evaluations > 0 and self.elapsed >= budget.seconds
        )

    # -- evaluating ---------------------------------------------------------------------------
    def evaluate(self, coefficients: np.ndarray, force: bool = False) -> Evaluation:
        """Step the environment with ``coefficients`` (clipped to the bounds); raises
        :class:`BudgetExhausted` when the budget is spent and the mask is not cached, unless
        ``force``."""
        coefficients = np.clip(np.asarray(coefficients, dtype=np.float64), 0.0, self.problem.upper)
        if self.exhausted and not force and not self.env.unwrapped.cached(coefficients):
            raise BudgetExhausted
        self._reset_once()
        _, reward, _, _, info = self.env.step(coefficients)
        return self.observe(coefficients, reward, info, charge_hits=False)

    def evaluate_many(self, candidates: np.ndarray, chunk: int = 128) -> list[Evaluation]:
        """Evaluate ``(K, m)`` candidates (clipped to the bounds) with the environment's batched
        evaluator (``env.unwrapped.evaluate_batch``), ``chunk`` at a time; returns K
        evaluations in order. Repeats and cached masks cost nothing. When the budget runs out
        part-way, the evaluations made so far are recorded and :class:`BudgetExhausted` is
        raised, as :meth:`evaluate` would."""
        rows = np.atleast_2d(np.asarray(candidates, dtype=np.float64))
        rows = np.clip(rows, 0.0, self.problem.upper)
        evaluations: list[Evaluation] = []
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            limit = None
            if self.budget.evaluations is not None:
                limit = max(self.budget.evaluations - self.evaluations, 0)
            if self.budget.seconds is not None and self.exhausted:
                limit = 0
            self._reset_once()
            infos = self.env.unwrapped.evaluate_batch(part, limit=limit)
            for row, info in zip(part, infos, strict=False):
                evaluations.append(self.observe(row, info["reward"], info, charge_hits=False))
            if len(infos) < len(part):
                raise BudgetExhausted
        return evaluations

    def _reset_once(self) -> None:
        if self._needs_reset:
            self.env.reset()
            self._needs_reset = False

    def observe(
        self, coefficients: np.ndarray, reward: float, info: dict, charge_hits: bool = True
    ) -> Evaluation:
        """Record an environment step, also one made by someone else (a Stable-Baselines3
        policy: each of its steps is charged, as ``total_timesteps`` counts them). With
        ``charge_hits=False`` (the session's own evaluations), steps the environment's cache
        answered cost no budget."""
        metric = float(info["metric"])
        hit = bool(info.get("cache_hit"))
        self.lookups += 1
        self.hits += hit
        evaluation = Evaluation(
            coefficients=np.asarray(coefficients, dtype=np.float64).copy(),
            reward=float(reward),
            metric=metric,
            metrics={key: float(info[key]) for key in self.problem.metric_names},
            sparsity=float(info["sparsity"]),
            feasible=bool(info["feasible"]) and self._meets_floor(metric),
            counts=np.asarray(info["pruned_channels"], dtype=np.int64),
            seconds=self.elapsed,
        )
        # Steps taken at another target (an episode-mode policy in training) never win.
        if abs(float(info.get("target", self.problem.target)) - self.problem.target) > 1e-9:
            evaluation.feasible = False
        elif self.best is None or self.problem.rank(evaluation) > self.problem.rank(self.best):
            self.best = evaluation
        if charge_hits or not hit:
            self.history.append(evaluation)
            self.bar.update(1)
            best = self.best
            if self.writer is not None:
                self._log(evaluation)
            if best is not None:
                self.bar.set_postfix(
                    best=f"{best.metric:.4g}", sparsity=f"{best.sparsity:.3f}",
                    feasible=best.feasible, refresh=False,
                )  # fmt: skip
        return evaluation

    def _log(self, evaluation: Evaluation) -> None:
        """Reward, metric and sparsity of ``evaluation``, and the best metric in the window so
        far (from the first evaluation that lands there), under ``<spec>/`` (the spec as one
        folder name, so a policy path in it makes no nested groups)."""
        step, prefix = len(self.history), spec_folder_name(self.solver)
        values = {"reward": evaluation.reward, "metric": evaluation.metric}
        values["sparsity"] = evaluation.sparsity
        if self.best is not None and self.best.feasible:
            values["best_metric"] = self.best.metric
        for name, value in values.items():
            self.writer.add_scalar(f"{prefix}/{name}", value, step)

    def _meets_floor(self, metric: float) -> bool:
        return meets_floor(metric, self.problem.sign, self.metric_floor)

    # -- result -------------------------------------------------------------------------------
    def result(self) -> Result:
        """Close the bar and summarise the run."""
        self.bar.close()
        core = self.env.unwrapped
        best = self.best
        message = self.message
        if best is None:
            raise RuntimeError(f"{self.solver} finished without evaluating anything")
        if not best.feasible and not message:
            message = self._infeasible_reason()
        return Result(
            solver=self.solver,
            task=core.task.name,
            target=self.problem.target,
            tolerance=self.problem.tolerance,
            coefficients=[float(c) for c in best.coefficients],
            metric=best.metric,
            metrics=dict(best.metrics),
            dense_metric=self.problem.dense_metric,
            sparsity=best.sparsity,
            feasible=best.feasible,
            evaluations=self.evaluations,
            wall_seconds=self.elapsed,
            history=[evaluation.record() for evaluation in self.history],
            metric_name=core.task.metric,
            metric_scale=self.problem.metric_scale,
            higher_is_better=self.problem.sign > 0,
            dense_metrics={key: float(v) for key, v in core.dense_metrics.items()},
            criterion=str(core.criterion),
            compensation=str(core.compensation),
            message=message,
            details=dict(self.details),
            groups=[f"{group.index} {group.label}" for group in core.groups],
            cache_hits=self.hits,
            cache_lookups=max(self.lookups, len(self.history)),
            sparsity_estimate=float(core.sparsity_estimate_of(best.coefficients)),
            task_options=dict(core.task.options()),
            env_options=dict(getattr(core, "options", {})),
            weights_sha256=getattr(core, "weights_sha256", ""),
            versions=provenance.versions(),
            machine=provenance.machine(),
            device=str(core.device),
            device_name=core.device_name,
            costs=core.costs_of(best.coefficients) if hasattr(core, "costs_of") else {},
        )

    def _infeasible_reason(self) -> str:
        problem = self.problem
        window = f"{problem.target:.4f} ± {problem.tolerance:.4f}"
        if not problem.reachable:
            return (
                f"infeasible: the target window {window} is out of reach; the largest "
                f"achievable sparsity is {problem.max_sparsity:.4f} (every c_i = {problem.upper})"
            )
        in_window = [e for e in self.history if problem.in_window(e.sparsity)]
        if in_window and not any(usable_metric(e.metric, problem.sign) for e in in_window):
            return (
                f"infeasible: every evaluation in the window {window} gave NaN or an infinitely "
                "bad metric"
            )
        if self.metric_floor is not None and in_window:
            return (
                f"infeasible: no evaluation in the window {window} met the metric floor "
                f"{self.metric_floor}"
            )
        spent = f"{len(self.history)} evaluation{'s' * (len(self.history) != 1)}"
        return f"infeasible: no evaluation reached the window {window} ({spent})"
