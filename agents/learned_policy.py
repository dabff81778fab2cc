"""A pruning policy that serves any network: one shared network per group, pooled over groups.

:class:`SetPolicy` reads the ``features`` observation of :mod:`prunegym.envs.features` (one row
per group and a context vector) together with a prior allocation, and gives one positive
*direction* per group: the prior, :func:`~prunegym.agents.allocation.lamp_allocation` at the
target, plus 0.01 (so groups it leaves dense can still be pruned), times a learned correction
in ``[e^−1.5, e^1.5]``, which is 1 untrained (residual policy learning). The answer is that
direction scaled onto the sparsity target with exact parameter counts
(:func:`scale_to_target`): no evaluation is needed to land in the window. Because the same
weights process every row and the rows are pooled by mean and max, the policy does not depend
on the number of groups, and can be asked about a network it never saw.

:class:`LearnedPolicy` (``--solver learned-policy``) answers with it: one evaluation, of the
answer itself, to report its metric; none to search. ``refine=N`` spends up to ``N`` more
evaluations: one on the prior alone (a correction that does not suit a network it never saw
then costs one evaluation, not the search), one on the policy's own answer where the screen
chose another, and the rest on a local search (or FD momentum) started from the best of them.
The screen chooses the answer among the policy's, the prior's and six blends of the prior by
how little each moves the outputs on the task's calibration batches
(:func:`~prunegym.agents.policy_screen.screened_answer`; no metric evaluated). By default it
screens where the task's metric is read from its outputs, not on closed-loop tasks.
``proposals=P`` screens the local search's steps the same way (the least distorted of ``P``).
"""

from __future__ import annotations

import hashlib
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prunegym.agents.allocation import (
    PRIOR_FLOOR,
    lamp_allocation,
    lamp_answer,
    scale_to_target,
)
from prunegym.agents.base import AskTellAgent
from prunegym.agents.fd_momentum import FDMomentum
from prunegym.agents.policy_screen import screened_answer, screens
from prunegym.agents.result import Evaluation
from prunegym.agents.session import Problem, require_channel_groups
from prunegym.envs.features import (
    CONTEXT_FEATURES,
    DYNAMIC_FEATURES,
    STATIC_FEATURES,
    feature_observation,
)
from prunegym.tasks.checkpoints import safe_load
from prunegym.tasks.options import is_count

SHIPPED_POLICY = "pruning_policy.pt"  # in prunegym/assets
ANSWER_WALK = (256, 128)  # moves, patience: an answer walks further onto a tight window
CORRECTION_SPAN = 1.5  # the correction lies in [e^−span, e^span]
POLICY_FORMAT = 2  # 2: a correction of the LAMP prior; 1 (unmarked): directions alone


class SetPolicy(nn.Module):
    """Per-group directions from per-group features, independent of the number of groups.

    ``h_i = φ([row_i, prior_i, context])``; ``g = [mean_i h_i, max_i h_i]``;
    ``direction_i = (prior_i + 0.01) · exp(κ · 1.5 · tanh(ψ([h_i, g, context])))``, with the
    correction's ``strength`` κ 1 as trained (0: the prior plus the floor alone).

    Args:
        hidden: Width of ``φ`` and ``ψ``.

    Shapes: ``groups`` ``(B, m, F)``, ``prior`` ``(B, m)`` (coefficients of the prior
    allocation at the target), ``context`` ``(B, C)`` → ``(B, m)``, float32, any device.
    """

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        rows = len(STATIC_FEATURES) + len(DYNAMIC_FEATURES) + 1  # and the prior
        context = len(CONTEXT_FEATURES)
        self.hidden = hidden
        self.encode = nn.Sequential(
            nn.Linear(rows + context, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh()
        )
        self.decide = nn.Sequential(
            nn.Linear(3 * hidden + context, hidden), nn.Tanh(), nn.Linear(hidden, 1)
        )
        nn.init.zeros_(self.decide[-1].weight)  # untrained: the prior (plus the floor)
        nn.init.zeros_(self.decide[-1].bias)

    def forward(
        self,
        groups: torch.Tensor,
        prior: torch.Tensor,
        context: torch.Tensor,
        strength: float = 1.0,
    ) -> torch.Tensor:
        spread = context[:, None, :].expand(-1, groups.shape[1], -1)
        encoded = self.encode(torch.cat([groups, prior[..., None], spread], dim=-1))
        pooled = torch.cat([encoded.mean(dim=1), encoded.amax(dim=1)], dim=-1)
        pooled = pooled[:, None, :].expand(-1, groups.shape[1], -1)
        logits = self.decide(torch.cat([encoded, pooled, spread], dim=-1)).squeeze(-1)
        correction = strength * CORRECTION_SPAN * torch.tanh(logits)
        return (prior + PRIOR_FLOOR) * torch.exp(correction)

    def vector(self) -> torch.Tensor:
        """All weights as one flat float32 vector (for evolution strategies)."""
        return nn.utils.parameters_to_vector(self.parameters()).detach().clone()

    def load_vector(self, vector: torch.Tensor) -> None:
        nn.utils.vector_to_parameters(vector, self.parameters())


def observations(core, targets: np.ndarray) -> tuple[torch.Tensor, ...]:
    """What the policy reads about ``core`` (a PruneEnv) at each target: the reset
    observation's ``groups`` ``(T, m, F)``, the prior allocation ``(T, m)`` and ``context``
    ``(T, C)``, float32 CPU tensors."""
    zeros = np.zeros(len(core.groups), dtype=np.float32)
    rows, contexts = [], []
    for target in np.atleast_1d(targets):
        context = core.feature_context(zeros, target)
        observation = feature_observation(core.group_features, zeros, context)
        rows.append(observation["groups"])
        contexts.append(observation["context"])
    prior = lamp_allocation(core, targets).astype(np.float32)
    return (
        torch.from_numpy(np.stack(rows)),
        torch.from_numpy(prior),
        torch.from_numpy(np.stack(contexts)),
    )


def feature_layout() -> dict[str, list[str]]:
    """The names of the static, dynamic and context features, in the order the policy reads
    them (a policy file records them; one that reads others is refused)."""
    return {
        "static": list(STATIC_FEATURES), "dynamic": list(DYNAMIC_FEATURES),
        "context": list(CONTEXT_FEATURES),
    }  # fmt: skip


def policy_path(path: str | Path | None = None) -> Path:
    """``path``, or the shipped policy's file where it is None."""
    if path is None:
        return Path(str(resources.files("prunegym.assets") / SHIPPED_POLICY))
    return Path(path)


def load_policy(path: str | Path | None = None) -> SetPolicy:
    """The policy saved at ``path`` (default: the shipped one), on the CPU in eval mode.

    Raises:
        ValueError: for a missing or unreadable file, in one line.
    """
    path = policy_path(path)
    try:
        saved = safe_load(path, "policy file")
    except FileNotFoundError as error:
        raise ValueError(str(error)) from None
    if not isinstance(saved, dict) or "state_dict" not in saved:
        raise ValueError(f"policy file {path} is not a prunegym policy (no 'state_dict' entry)")
    try:
        if saved.get("format", 1) != POLICY_FORMAT:
            raise ValueError(
                f"saved in format {saved.get('format', 1)}, this prunegym reads format "
                f"{POLICY_FORMAT}; train it again with `prunegym train-policy`"
            )
        layout = saved.get("features", feature_layout())  # files before it: this layout
        if layout != feature_layout():
            raise ValueError(
                f"it reads the features {layout}, this prunegym gives {feature_layout()}; train "
                "it again with `prunegym train-policy`"
            )
        if int(saved["hidden"]) < 1:
            raise ValueError(f"its width 'hidden' is {saved['hidden']}, not a positive integer")
        policy = SetPolicy(hidden=int(saved["hidden"]))
        policy.load_state_dict(saved["state_dict"])
    except Exception as error:  # noqa: BLE001  (a dict of the wrong layout fails in many ways)
        lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
        reason = " ".join(lines[:2])  # load_state_dict puts the detail on its second line
        raise ValueError(f"cannot read policy {path}: {type(error).__name__}: {reason}") from error
    if not all(torch.isfinite(p).all() for p in policy.parameters()):
        raise ValueError(f"policy file {path} holds NaN or infinite weights")
    return policy.eval()


def save_policy(policy: SetPolicy, path: str | Path, recipe: dict) -> None:
    """Save ``policy`` with the ``recipe`` that trained it (JSON-safe values) and the names of
    the features it reads, in order."""
    saved = {"format": POLICY_FORMAT, "hidden": policy.hidden, "recipe": recipe}
    saved["features"] = feature_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({**saved, "state_dict": policy.state_dict()}, path)


@torch.no_grad()
def propose(policy: SetPolicy, core, targets, strength: float = 1.0) -> np.ndarray:
    """The policy's coefficients ``(T, m)`` for ``core`` at each target, in the window where
    the counts allow it (a row the scaling leaves outside walks up to 256 channel moves onto
    it: :func:`~prunegym.agents.allocation.scale_to_target`); nothing is evaluated.
    ``strength`` scales the learned correction (1: as trained, 0: the prior alone)."""
    targets = np.atleast_1d(np.asarray(targets, dtype=np.float64))
    device = next(policy.parameters()).device
    inputs = [tensor.to(device) for tensor in observations(core, targets)]
    directions = policy(*inputs, strength=strength).double().cpu().numpy()
    return scale_to_target(core, directions, targets, walk=ANSWER_WALK)


class LearnedPolicy(AskTellAgent):
    """The learned policy's answer, optionally refined (``--solver learned-policy``).

    Args:
        policy: Path of a policy file (default: the shipped policy).
        refine: Evaluations spent polishing the answer (0: the answer alone): the prior's
            allocation (and, with ``screen``, the policy's own answer), then the search from
            the best of them.
        search: How: ``"local"`` (default), a local random search: batches of ``batch``
            Gaussian perturbations of the best coefficients so far (best as the result ranks
            them: in the window by the metric alone, not by the reward, whose distance
            penalty can outweigh a small metric's differences; standard deviation
            ``sigma`` times the largest coefficient, 0.95; ``sigma`` is ×1.5 after a batch that
            improved, ×0.7 after one that did not, ×2 after one whose masks had all been
            evaluated before, at most 1), each scaled back onto the target; or
            ``"fd-momentum"``, FD momentum's constant-sparsity refinement started from the
            better of the answer and the prior (at most ``2m + 1`` evaluations per iteration,
            fewer where masks repeat; an iteration whose new masks do not fit in what is left
            is not started, so a ``refine`` below ``2m + 1`` after the first evaluations, the
            prior's and where screened the policy's own, warns that no iteration may fit).
        sigma, batch: Of the local search.
        proposals: Of the local search: each candidate it evaluates is the least distorted
            (``core.calibration_distortion``, one forward pass over the task's calibration
            batches each; no metric evaluated) of ``proposals`` perturbations, preferring
            those in the window and masks not yet evaluated. 1 (default): no screening.
        seed: Seed of the local search.
        screen: Before answering, screen the policy's answer against the prior and six blends
            of the prior with the ``uniform`` and ``norm`` directions by their outputs on the
            task's calibration batches (:func:`screened_answer`): one forward pass over them
            per distinct candidate in the window (at most eight), no metric evaluated; the least
            distorted one is the answer. With ``refine`` of 2 or more, where the screen chose
            another, the policy's own answer is evaluated too, after the prior, and the search
            starts from the best of the three. ``"auto"`` (default): screen where the task's
            metric is a function of the model's outputs on a data batch
            (:class:`~prunegym.tasks.capabilities.OutputEvaluation`), which the calibration
            outputs stand in for; trust the policy on closed-loop tasks (TD-MPC), whose
            returns no distance from the dense outputs predicts.
        policy_sha256: The SHA-256 the policy file must have (a result records it, so that
            replaying the result refuses a file that changed since); ``None``: any.
    """

    name = "learned-policy"

    def __init__(
        self,
        policy: str | Path | None = None,
        refine: int = 0,
        search: str = "local",
        sigma: float = 0.05,
        batch: int = 5,
        seed: int | None = 0,
        screen: bool | str = "auto",
        proposals: int = 1,
        policy_sha256: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(seed=seed, **kwargs)
        if not is_count(refine, 0):
            raise ValueError(f"learned-policy refine must be an integer >= 0, got {refine!r}")
        if search not in ("local", "fd-momentum"):
            raise ValueError(
                f"learned-policy search must be 'local' or 'fd-momentum', not {search!r}"
            )
        number = isinstance(sigma, (int, float)) and not isinstance(sigma, bool)
        if not (number and np.isfinite(sigma) and sigma > 0) or not is_count(batch, 1):
            raise ValueError(
                f"learned-policy sigma must be > 0 and batch an integer >= 1, got {sigma!r} "
                f"and {batch!r}"
            )
        if screen not in (True, False, "auto"):
            raise ValueError(f"learned-policy screen must be true, false or auto, got {screen!r}")
        if not is_count(proposals, 1):
            raise ValueError(f"learned-policy proposals must be an integer >= 1, got {proposals!r}")
        self.policy, self.refine, self.search = policy, int(refine), search
        self.sigma, self.batch = float(sigma), int(batch)
        self.screen, self.proposals = screen, int(proposals)
        self._network = load_policy(policy)
        found = hashlib.sha256(policy_path(policy).read_bytes()).hexdigest()
        if policy_sha256 is not None and policy_sha256 != found:
            raise ValueError(
                f"policy file {policy_path(policy)} has changed: its SHA-256 is {found[:12]}…, "
                f"not the {str(policy_sha256)[:12]}… asked for"
            )
        self.policy_sha256 = found  # in settings: results name the policy, not only its path

    def start(self, problem: Problem) -> None:
        core = problem.core
        require_channel_groups(core, "learned-policy")
        self.problem = problem
        self.answer = self.proposed = propose(self._network, core, [problem.target])[0]
        self.screening = screens(self.screen, core.task)
        if self.screening:
            self.answer, seen = screened_answer(core, self.proposed, problem.target)
            self.session.details["screen"] = seen
        self.answered, self.asked = False, 0
        self.best, self.best_rank = self.answer.copy(), (-1, -np.inf)
        self.step = self.sigma
        self.rng = np.random.default_rng(self.seed)
        self.fd = None
        if self.refine and self.search == "fd-momentum":
            self.fd = FDMomentum(progress=False)
            self.fd.session = self.session  # its trace goes into this run's details
            self.fd.start(problem)
            first = 3 if self.screening else 2  # the answer, the prior (the policy's own)
            if self.refine + 1 - first < 2 * problem.size:
                warnings.warn(
                    f"learned-policy: refine={self.refine} may be too few for one "
                    f"FD-momentum iteration after the prior's evaluation (up to 2m = "
                    f"{2 * problem.size} new masks); then the better of the answer and the prior "
                    "is not refined (search='local' uses any number)",
                    stacklevel=2,
                )

    @property
    def left(self) -> int:
        """Evaluations still allowed: cache hits (repeats of earlier masks) cost none."""
        return 1 + self.refine - self.session.evaluations

    def ask(self) -> np.ndarray | None:
        if not self.answered:  # refining: the prior too, so a correction that hurts costs 1
            if not self.refine:
                return self.answer[None]
            rows = [self.answer, lamp_answer(self.problem.core, self.problem.target)]
            if self.screening and all(np.any(self.proposed != row) for row in rows):
                rows.append(self.proposed)  # the screen is a proxy: the policy's own answer too
            return np.stack(rows[: 1 + self.refine])
        if self.left <= 0:
            return None
        if self.fd is not None:
            rows = self.fd.ask()
            cached = self.problem.core.cached
            new = 0 if rows is None else sum(not cached(row) for row in rows)
            return None if rows is None or new > self.left else rows
        count = min(self.batch, self.left)
        self.asked += count
        self.spent = self.session.evaluations
        if self.asked > 10 * (1 + self.refine):  # only repeats of seen masks for a long while
            return None
        drawn = count * self.proposals
        noise = self.rng.standard_normal((drawn, len(self.best)))
        upper = self.problem.upper
        moved = np.clip(self.best + self.step * upper * noise, 1e-6, upper)
        rows = scale_to_target(self.problem.core, moved, self.problem.target)
        return rows if self.proposals == 1 else self._least_distorted(rows, count)

    def _least_distorted(self, rows: np.ndarray, count: int) -> np.ndarray:
        """``count`` of ``rows`` ``(K, m)``, one per mask: fresh masks in the window first, the
        least distorted first; then masks already evaluated; then those outside the window."""
        core = self.problem.core
        _, first = np.unique(core.pruned_counts(rows), axis=0, return_index=True)
        rows = rows[np.sort(first)]  # one row per mask
        distortion = core.calibration_distortion(rows)
        outside = ~self.problem.in_window(core.sparsity_of(rows))
        seen = np.array([core.cached(row) for row in rows])
        order = np.lexsort((distortion, seen, outside))
        return rows[order[:count]]

    def tell(self, candidates: np.ndarray, evaluations: list[Evaluation]) -> None:
        first, self.answered = not self.answered, True
        if self.fd is not None and not first:
            self.fd.tell(candidates, evaluations)
            return
        ranks = [self.problem.rank(e) for e in evaluations]  # as the result ranks them
        best = max(range(len(ranks)), key=ranks.__getitem__)
        improved = ranks[best] > self.best_rank
        if improved:
            self.best, self.best_rank = candidates[best].copy(), ranks[best]
        if first and self.fd is not None:  # FD momentum starts from the better of the two
            self.fd.c = self.best.copy()
            if self.problem.in_window(evaluations[best].sparsity):
                self.fd.phase = "refine"
        if not first:
            repeats = self.session.evaluations == self.spent  # every mask already seen
            self.step = min(self.step * (2.0 if repeats else 1.5 if improved else 0.7), 1.0)
