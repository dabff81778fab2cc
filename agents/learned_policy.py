"""A pruning policy that serves any network: one shared network per group, pooled over groups.

:class:`SetPolicy` reads the ``features`` observation of :mod:`prunegym.envs.features` (one row
per group and a context vector) and gives one positive *direction* per group. The answer is
that direction scaled onto the sparsity target with exact parameter counts
(:func:`scale_to_target`): no evaluation is needed to land in the window. Because the same
weights process every row and the rows are pooled by mean and max, the policy does not depend
on the number of groups, and can be asked about a network it never saw.

:class:`LearnedPolicy` (``--solver learned-policy``) answers with it: one evaluation, of the
answer itself, to report its metric; none to search. ``refine=N`` polishes the answer with up
to ``N`` more evaluations of a local search (or FD momentum) started from it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prunegym.agents.base import AskTellAgent
from prunegym.agents.fd_momentum import FDMomentum
from prunegym.agents.result import Evaluation
from prunegym.agents.session import Problem
from prunegym.envs.features import (
    CONTEXT_FEATURES,
    DYNAMIC_FEATURES,
    STATIC_FEATURES,
    feature_observation,
)

SHIPPED_POLICY = "pruning_policy.pt"  # in prunegym/assets


class SetPolicy(nn.Module):
    """Per-group directions from per-group features, independent of the number of groups.

    ``h_i = φ([row_i, context])``; ``g = [mean_i h_i, max_i h_i]``;
    ``direction_i = sigmoid(ψ([h_i, g, context]))`` in (0, 1).

    Args:
        hidden: Width of ``φ`` and ``ψ``.

    Shapes: ``groups`` ``(B, m, F)``, ``context`` ``(B, C)`` → ``(B, m)``, float32, any device.
    """

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        rows = len(STATIC_FEATURES) + len(DYNAMIC_FEATURES)
        context = len(CONTEXT_FEATURES)
        self.hidden = hidden
        self.encode = nn.Sequential(
            nn.Linear(rows + context, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh()
        )
        self.decide = nn.Sequential(
            nn.Linear(3 * hidden + context, hidden), nn.Tanh(), nn.Linear(hidden, 1)
        )
        nn.init.zeros_(self.decide[-1].weight)  # untrained: the same direction everywhere
        nn.init.zeros_(self.decide[-1].bias)

    def forward(self, groups: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        spread = context[:, None, :].expand(-1, groups.shape[1], -1)
        encoded = self.encode(torch.cat([groups, spread], dim=-1))
        pooled = torch.cat([encoded.mean(dim=1), encoded.amax(dim=1)], dim=-1)
        pooled = pooled[:, None, :].expand(-1, groups.shape[1], -1)
        logits = self.decide(torch.cat([encoded, pooled, spread], dim=-1)).squeeze(-1)
        return torch.sigmoid(logits)

    def vector(self) -> torch.Tensor:
        """All weights as one flat float32 vector (for evolution strategies)."""
        return nn.utils.parameters_to_vector(self.parameters()).detach().clone()

    def load_vector(self, vector: torch.Tensor) -> None:
        nn.utils.vector_to_parameters(vector, self.parameters())


def observations(core, targets: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The reset observation of ``core`` (a PruneEnv) at each target: ``groups`` ``(T, m, F)``
    and ``context`` ``(T, C)`` float32 CPU tensors."""
    zeros = np.zeros(len(core.groups), dtype=np.float32)
    rows, contexts = [], []
    for target in np.atleast_1d(targets):
        context = core.feature_context(zeros, target)
        observation = feature_observation(core.group_features, zeros, context)
        rows.append(observation["groups"])
        contexts.append(observation["context"])
    return torch.from_numpy(np.stack(rows)), torch.from_numpy(np.stack(contexts))


def scale_to_target(core, directions: np.ndarray, targets: np.ndarray, steps: int = 40):
    """``c = clip(α·d, 0, 0.95)`` per row of ``directions`` ``(K, m)`` with the exact sparsity
    nearest its row's target ``(K,)``: a bisection on each ``α``, all rows at once, with exact
    counts (no evaluation). Returns ``(K, m)`` float64.

    Where the last channel that ``α`` adds is too coarse for the window (a group holding most
    of the parameters, while the others are saturated or barely pruned), the row is repaired:
    the groups whose counts that channel changed stay fixed, and every other group is raised
    by the same amount from just below the target, or lowered from just above it, bisected
    onto the target; the nearest of the three rows is kept."""
    directions = np.clip(np.asarray(directions, dtype=np.float64), 1e-6, None)
    targets = np.broadcast_to(np.asarray(targets, dtype=np.float64), (len(directions),))
    upper = float(core.action_space.high.max())

    def scaled(scale: np.ndarray) -> np.ndarray:
        return np.clip(scale[:, None] * directions, 0, upper)

    highest = upper / directions.min(axis=1)
    below, above = map(scaled, _bisect(core, scaled, 0 * highest, highest, targets, steps))
    best = _nearest(core, below, above, targets)
    miss = np.abs(core.sparsity_of(best) - targets) > core.tolerance
    if miss.any():
        low_rows, high_rows, wanted = below[miss], above[miss], targets[miss]
        fixed = core.pruned_counts(high_rows) != core.pruned_counts(low_rows)
        ceiling = np.full(len(wanted), upper)

        def raised(beta: np.ndarray) -> np.ndarray:  # the others up from below the target
            return np.where(fixed, low_rows, np.clip(low_rows + beta[:, None], 0, upper))

        def lowered(beta: np.ndarray) -> np.ndarray:  # or down from above it
            return np.where(
                fixed, high_rows, np.clip(high_rows - (upper - beta[:, None]), 0, upper)
            )

        repaired = best[miss]
        for rows_at in (raised, lowered):
            betas = _bisect(core, rows_at, 0 * ceiling, ceiling, wanted, steps)
            repaired = _nearest(
                core, repaired, _nearest(core, *map(rows_at, betas), wanted), wanted
            )
        best[miss] = repaired
    return best


def _bisect(core, rows_at, low: np.ndarray, high: np.ndarray, targets: np.ndarray, steps: int):
    """``(low, high)`` ``(K,)`` bracketing each target: ``sparsity(rows_at(low)) < target``
    (or ``low`` at its start), ``sparsity(rows_at(high)) ≥ target`` where the starting ``high``
    reaches it; exact counts."""
    for _ in range(steps):
        middle = (low + high) / 2
        short = core.sparsity_of(rows_at(middle)) < targets
        low, high = np.where(short, middle, low), np.where(short, high, middle)
    return low, high


def _nearest(core, first: np.ndarray, second: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per row, whichever of ``first`` and ``second`` ``(K, m)`` is nearer its target."""
    gaps = [np.abs(core.sparsity_of(rows) - targets) for rows in (first, second)]
    return np.where((gaps[1] < gaps[0])[:, None], second, first)


def load_policy(path: str | Path | None = None) -> SetPolicy:
    """The policy saved at ``path`` (default: the shipped one), on the CPU in eval mode.

    Raises:
        ValueError: for a missing or unreadable file, in one line.
    """
    if path is None:
        source = resources.files("prunegym.assets") / SHIPPED_POLICY
        path = Path(str(source))
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"policy file not found: {path}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        policy = SetPolicy(hidden=int(saved["hidden"]))
        policy.load_state_dict(saved["state_dict"])
    except Exception as error:  # noqa: BLE001  (torch raises many kinds for a bad file)
        raise ValueError(f"cannot read policy {path}: {type(error).__name__}: {error}") from error
    return policy.eval()


def save_policy(policy: SetPolicy, path: str | Path, recipe: dict) -> None:
    """Save ``policy`` with the ``recipe`` that trained it (JSON-safe values)."""
    torch.save({"hidden": policy.hidden, "state_dict": policy.state_dict(), "recipe": recipe}, path)


@torch.no_grad()
def propose(policy: SetPolicy, core, targets) -> np.ndarray:
    """The policy's coefficients ``(T, m)`` for ``core`` at each target, in the window where
    the counts allow it; nothing is evaluated."""
    targets = np.atleast_1d(np.asarray(targets, dtype=np.float64))
    groups, context = observations(core, targets)
    directions = policy(groups, context).double().numpy()
    return scale_to_target(core, directions, targets)


class LearnedPolicy(AskTellAgent):
    """The learned policy's answer, optionally refined (``--solver learned-policy``).

    Args:
        policy: Path of a policy file (default: the shipped policy).
        refine: Evaluations spent polishing the answer (0: the answer alone).
        search: How: ``"local"`` (default), a local random search: batches of ``batch``
            Gaussian perturbations of the best coefficients so far (standard deviation
            ``sigma``, ×1.5 after a batch that improved, ×0.7 after one that did not), each
            scaled back onto the target; or ``"fd-momentum"``, FD momentum's constant-sparsity
            refinement started from the answer (``2m + 1`` evaluations per iteration; a last
            iteration that does not fit is not started).
        sigma, batch: Of the local search.
        seed: Seed of the local search.
    """

    name = "learned-policy"

    def __init__(
        self,
        policy: str | None = None,
        refine: int = 0,
        search: str = "local",
        sigma: float = 0.05,
        batch: int = 5,
        seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(seed=seed, **kwargs)
        if isinstance(refine, bool) or int(refine) != refine or refine < 0:
            raise ValueError(f"learned-policy refine must be an integer >= 0, got {refine!r}")
        if search not in ("local", "fd-momentum"):
            raise ValueError(
                f"learned-policy search must be 'local' or 'fd-momentum', not {search!r}"
            )
        if not (np.isfinite(sigma) and sigma > 0) or int(batch) != batch or batch < 1:
            raise ValueError("learned-policy sigma must be > 0 and batch an integer >= 1")
        self.policy, self.refine, self.search = policy, int(refine), search
        self.sigma, self.batch = float(sigma), int(batch)
        self._network = load_policy(policy)

    def start(self, problem: Problem) -> None:
        core = problem.core
        if core.granularity != "channel":
            raise ValueError("learned-policy prunes channel groups; use granularity='channel'")
        self.problem = problem
        self.answer = propose(self._network, core, [problem.target])[0]
        self.answered, self.asked = False, 0
        self.best, self.best_objective = self.answer.copy(), np.inf
        self.step = self.sigma
        self.rng = np.random.default_rng(self.seed)
        self.fd = None
        if self.refine and self.search == "fd-momentum":
            self.fd = FDMomentum(progress=False)
            self.fd.session = self.session  # its trace goes into this run's details
            self.fd.start(problem)
            self.fd.c = self.answer.copy()
            if problem.in_window(problem.sparsity(self.answer)):
                self.fd.phase = "refine"

    @property
    def left(self) -> int:
        """Evaluations still allowed: cache hits (repeats of earlier masks) cost none."""
        return 1 + self.refine - self.session.evaluations

    def ask(self) -> np.ndarray | None:
        if not self.answered:
            return self.answer[None]
        if self.left <= 0:
            return None
        if self.fd is not None:
            rows = self.fd.ask()
            return None if rows is None or len(rows) > self.left else rows
        count = min(self.batch, self.left)
        self.asked += count
        if self.asked > 10 * (1 + self.refine):  # only repeats of seen masks for a long while
            return None
        noise = self.rng.standard_normal((count, len(self.best)))
        upper = self.problem.upper
        moved = np.clip(self.best + self.step * upper * noise, 1e-6, upper)
        return scale_to_target(self.problem.core, moved, self.problem.target)

    def tell(self, candidates: np.ndarray, evaluations: list[Evaluation]) -> None:
        first, self.answered = not self.answered, True
        if self.fd is not None and not first:
            self.fd.tell(candidates, evaluations)
            return
        objectives = [self.problem.objective(e.metric, e.sparsity) for e in evaluations]
        best = int(np.argmin(objectives))
        improved = objectives[best] < self.best_objective
        if improved:
            self.best, self.best_objective = candidates[best].copy(), objectives[best]
        if not first:
            self.step *= 1.5 if improved else 0.7
