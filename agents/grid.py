"""Grid search with a sparsity pre-filter (Sundaram et al., §IV-D a)."""

from __future__ import annotations

import numpy as np

from prunegym.agents.base import AskTellAgent
from prunegym.agents.result import Evaluation
from prunegym.agents.session import Problem

MAX_COMBINATIONS = 10**8
CHUNK = 1 << 16


def grid_combinations(points: np.ndarray, size: int, start: int, stop: int) -> np.ndarray:
    """Rows ``start..stop`` of the full grid ``points^size`` in row-major order, ``(k, size)``."""
    flat = np.arange(start, stop, dtype=np.int64)
    digits = np.unravel_index(flat, (len(points),) * size)
    return np.stack([points[d] for d in digits], axis=1)


def prefilter(
    problem: Problem, points: np.ndarray, window: float, rule: str = "exact"
) -> tuple[np.ndarray, int]:
    """Keep the grid combinations whose sparsity lies in ``target ± window``.

    Args:
        problem: The problem (gives exact sparsity or the paper's estimate, no evaluation).
        points: ``(n,)`` grid values per coefficient.
        window: Half-width of the kept sparsity window (fraction, e.g. 0.01).
        rule: ``"exact"`` (masked-entry count) or ``"estimate"`` (the paper's Σc_i s_i/‖θ‖₀).

    Returns:
        ``(survivors (k, m), total combinations)``.
    """
    total = len(points) ** problem.size
    if total > MAX_COMBINATIONS:
        raise ValueError(
            f"grid of {len(points)}^{problem.size} = {total:.3g} combinations is too large "
            f"(limit {MAX_COMBINATIONS:.0e}); use fewer points or the fd-momentum solver"
        )
    measure = problem.sparsity if rule == "exact" else problem.sparsity_estimate
    kept = []
    for start in range(0, total, CHUNK):
        rows = grid_combinations(points, problem.size, start, min(start + CHUNK, total))
        inside = np.abs(measure(rows) - problem.target) <= window + 1e-12
        kept.append(rows[inside])
    return np.concatenate(kept), total


class GridSearch(AskTellAgent):
    """Evaluate every grid combination that passes the sparsity pre-filter; keep the best.

    Args:
        points: ``n``, grid values per coefficient, ``linspace(0, 0.95, n)``.
        window: Pre-filter half-width (fraction); ``None`` uses the env's tolerance.
        rule: Pre-filter sparsity, ``"exact"`` or ``"estimate"`` (the paper's eq. 1b).
        batch: Survivors handed out per ``ask``.

    ``result.details`` reports ``combinations``, ``survivors`` and the survivor count under the
    other rule. With no survivor it evaluates the grid point nearest the target and reports
    ``feasible=False``.
    """

    name = "grid"

    def __init__(
        self,
        points: int = 10,
        window: float | None = None,
        rule: str = "exact",
        batch: int = 256,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(points, bool) or not isinstance(points, int) or points < 2:
            raise ValueError(f"grid points must be an integer >= 2, got {points!r}")
        if rule not in ("exact", "estimate"):
            raise ValueError(f"grid rule must be 'exact' or 'estimate', got {rule!r}")
        if window is not None and not (0 <= window < 1):
            raise ValueError(f"grid window must be a fraction in [0, 1), got {window!r}")
        self.points, self.window, self.rule, self.batch = points, window, rule, batch

    def start(self, problem: Problem) -> None:
        values = np.linspace(0.0, problem.upper, self.points)
        window = problem.tolerance if self.window is None else self.window
        survivors, total = prefilter(problem, values, window, self.rule)
        other = "estimate" if self.rule == "exact" else "exact"
        self.session.details.update(
            combinations=total,
            survivors=len(survivors),
            prefilter_rule=self.rule,
            prefilter_window=window,
            **{f"survivors_{other}": len(prefilter(problem, values, window, other)[0])},
        )
        if len(survivors) == 0:
            self.session.message = (
                f"infeasible: none of the {total} grid combinations has sparsity within "
                f"{problem.target:.4f} ± {window:.4f}; evaluated the nearest one"
            )
            nearest = self._nearest(problem, values)
            survivors = nearest[None]
        self.queue = survivors
        self.position = 0

    def _nearest(self, problem: Problem, values: np.ndarray) -> np.ndarray:
        best, best_gap = None, np.inf
        total = len(values) ** problem.size
        for start in range(0, total, CHUNK):
            rows = grid_combinations(values, problem.size, start, min(start + CHUNK, total))
            gaps = np.abs(problem.sparsity(rows) - problem.target)
            if gaps.min() < best_gap:
                best, best_gap = rows[int(np.argmin(gaps))], gaps.min()
        return best

    def ask(self) -> np.ndarray | None:
        if self.position >= len(self.queue):
            return None
        chunk = self.queue[self.position : self.position + self.batch]
        self.position += len(chunk)
        return chunk

    def tell(self, candidates: np.ndarray, evaluations: list[Evaluation]) -> None:
        pass  # the session keeps the best
