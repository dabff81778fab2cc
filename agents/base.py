"""The solver interface: ``agent.run(env, budget) -> Result``, and the ask/tell base class.

Write a new black-box solver by subclassing :class:`AskTellAgent`::

    class MySolver(AskTellAgent):
        name = "mine"

        def start(self, problem):       # once per run: sizes, bounds, target, sparsity oracle
            ...

        def ask(self):                  # (k, m) candidate coefficients, or None to stop
            ...

        def tell(self, candidates, evaluations):   # the evaluations of the asked candidates
            ...

``run`` handles the budget, the history, the best result, caching and the progress bar.
"""

from __future__ import annotations

import numbers
from pathlib import PurePath

import gymnasium as gym
import numpy as np

from prunegym.agents.result import Budget, Evaluation, Result
from prunegym.agents.session import BudgetExhausted, Problem, Session
from prunegym.agents.tensorboard import tensorboard_writer
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks.options import check_options, stored_settings


class Agent:
    """A pruning solver. Subclasses implement :meth:`solve`.

    Args:
        metric_floor: Optional metric the result must meet to count as feasible (for example a
            PSNR floor in dB); evaluations worse than it are infeasible.
        progress: Show a progress bar with the best metric so far on stderr.
        seed: Seed of the solver's randomness, recorded in the result. Deterministic solvers
            (grid, FD momentum, the one-shot baselines) record it and ignore it.
    """

    name = "agent"
    #: Whether the solver stops by itself; if not, ``run`` refuses an unlimited budget.
    terminates = True
    #: A physically pruned network the solver built itself (an ``nn.Module``, set by its last
    #: run), or None: then outputs (``solve --out``, ``export``) are made from the best
    #: coefficients.
    pruned_model = None

    def __init__(
        self, metric_floor: float | None = None, progress: bool = True, seed: int | None = None
    ) -> None:
        self.metric_floor = metric_floor
        self.progress = progress
        self.seed = seed

    def settings(self) -> dict:
        """The solver's constructor arguments as set on this instance (JSON-safe), for result
        files: every named ``__init__`` parameter of the class and its bases that the instance
        stores under the same name, except ``progress`` and ``seed``."""
        stored = stored_settings(self)
        return {k: _json_safe(v) for k, v in stored.items() if k not in ("progress", "seed")}

    def run(
        self,
        env: gym.Env,
        budget: Budget | int | dict | None = None,
        tensorboard: str | None = None,
    ) -> Result:
        """Solve the pruning problem of ``env`` within ``budget``.

        Args:
            env: A :class:`prunegym.PruneEnv`, possibly wrapped (``gym.make``).
            budget: Evaluations (an int), ``Budget(evaluations=, seconds=)``, a dict with those
                keys, or ``None`` to let a self-terminating solver run to its end.
            tensorboard: A directory to log each evaluation's reward, metric, sparsity and the
                best metric so far to (TensorBoard, x-axis: evaluations).

        Returns:
            The best coefficients found, their metrics and the full history.
        """
        numeric = {k: v for k, v in stored_settings(self).items() if _is_number(v)}
        check_options(f"solver {self.name!r}", numeric, type(self))  # NaN, 1.5 for an int
        if self.seed is not None and self.seed < 0:
            raise ValueError(f"solver {self.name!r}: seed must be >= 0, got {self.seed}")
        budget = Budget.of(budget)
        if budget.unlimited and not self.terminates:
            raise ValueError(
                f"solver {self.name!r} does not stop by itself: give a budget of evaluations "
                "and/or seconds, e.g. run(env, 100) or run(env, Budget(seconds=30))"
            )
        if not isinstance(env.unwrapped, PruneEnv):
            raise TypeError(f"{self.name} needs a prunegym PruneEnv, got {env.unwrapped!r}")
        writer = tensorboard_writer(tensorboard, self.name)
        session = Session(env, budget, self.name, self.metric_floor, self.progress, writer)
        try:
            self.solve(session)
        except BudgetExhausted:
            pass
        finally:
            session.bar.close()
            if writer is not None:
                writer.close()
        result = session.result()
        result.solver_settings = self.settings()
        result.seed = None if self.seed is None else int(self.seed)
        result.budget = {"evaluations": budget.evaluations, "seconds": budget.seconds}
        if env.unwrapped.task.test_episodes:
            self._score_on_test_episodes(result, env.unwrapped)
        return result

    def _score_on_test_episodes(self, result: Result, core) -> None:
        """Score the chosen result, and the dense model, on the task's held-out test episodes,
        which the search never saw (the search episodes' best is biased upwards)."""
        metrics, values = core.test_evaluation(result.coefficients, model=self.pruned_model)
        dense_metrics, dense_values = core.test_evaluation()
        result.test_metrics, result.test_values = metrics, values.tolist()
        result.dense_test_metrics, result.dense_test_values = dense_metrics, dense_values.tolist()

    def solve(self, session: Session) -> None:
        """Drive ``session.evaluate`` until done; ``BudgetExhausted`` ends the run cleanly."""
        raise NotImplementedError


class AskTellAgent(Agent):
    """A solver written as ask/tell; ``run`` evaluates whatever :meth:`ask` proposes."""

    def start(self, problem: Problem) -> None:
        """Called once at the start of a run."""

    def ask(self) -> np.ndarray | None:
        """Return ``(k, m)`` (or ``(m,)``) coefficients to evaluate next, or ``None`` to stop."""
        raise NotImplementedError

    def tell(self, candidates: np.ndarray, evaluations: list[Evaluation]) -> None:
        """Receive the evaluations of the candidates from the last :meth:`ask`."""
        raise NotImplementedError

    def solve(self, session: Session) -> None:
        self.session = session
        self.start(session.problem)
        while True:
            candidates = self.ask()
            if candidates is None:
                return
            candidates = np.atleast_2d(np.asarray(candidates, dtype=np.float64))
            if candidates.shape[1:] != (session.problem.size,):
                raise ValueError(
                    f"{self.name}.ask() must return (k, {session.problem.size}) coefficients, "
                    f"got shape {candidates.shape}"
                )
            if not np.all(np.isfinite(candidates)):
                raise ValueError(f"{self.name}.ask() returned NaN or infinite coefficients")
            evaluations = session.evaluate_many(candidates)
            self.tell(candidates, evaluations)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _json_safe(value):
    """``value`` as JSON-serialisable data: arrays become lists, paths strings (so that the
    setting can be given again), unknown objects their repr."""
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    return repr(value)
