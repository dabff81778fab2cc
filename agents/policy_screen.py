"""The calibration screen: the learned policy's answer checked against the prior and its blends.

:func:`screened_answer` lists eight allocations at the target (the policy's answer, the LAMP
prior, and the prior moved toward the ``uniform`` and ``norm`` directions) and keeps the one
whose masked model moves the outputs on the task's calibration batches least; no metric is
evaluated. :func:`screens` says where the ``screen`` option applies it.
"""

from __future__ import annotations

import numpy as np

from prunegym.agents.allocation import (
    PRIOR_FLOOR,
    lamp_allocation,
    norm_direction,
    scale_to_target,
)
from prunegym.tasks.capabilities import OutputEvaluation

BLENDS = (0.25, 0.5, 0.75)  # how far the screen moves the prior toward uniform and norm
SCREENED = (  # the screen's candidates, in order (screen_candidates)
    "policy", "lamp", *(f"lamp to {d} {a}" for d in ("uniform", "norm") for a in BLENDS),
)  # fmt: skip


def screen_candidates(core, answer: np.ndarray, target: float) -> np.ndarray:
    """What :func:`screened_answer` chooses among, ``(8, m)`` float64: the ``answer``, the
    prior (as :func:`~prunegym.agents.allocation.lamp_answer` gives it), and the prior moved
    toward the uniform and the norm-based directions (``(prior + 0.01)^(1−a) · d^a``, ``a`` in
    :data:`BLENDS`), each scaled onto the target; nothing is evaluated."""
    prior = lamp_allocation(core, [target])[0]  # computed once: lamp_answer would again
    floored = prior + PRIOR_FLOOR
    toward_norm = norm_direction(core.dense_group_norms)
    blends = [floored ** (1 - a) * toward**a for toward in (1.0, toward_norm) for a in BLENDS]
    scaled = scale_to_target(core, np.stack([prior, *blends]), np.full(1 + len(blends), target))
    return np.vstack([answer, scaled])


def in_window(core, rows: np.ndarray, target: float) -> np.ndarray:
    """``(K,)`` bool: whether each row of ``rows`` ``(K, m)`` lands in the window around
    ``target`` (exact sparsity; the same slack as
    :meth:`~prunegym.agents.session.Problem.in_window`)."""
    return np.abs(core.sparsity_of(rows) - target) <= core.tolerance + 1e-12


def screened_answer(core, answer: np.ndarray, target: float) -> tuple[np.ndarray, dict]:
    """Of :func:`screen_candidates` in the window, the one whose masked model's outputs on
    the task's calibration batches stay closest to the dense model's
    (``core.calibration_distortion``: each distinct mask scored once, no metric evaluated).
    Returns it ``(m,)`` and what the screen saw: ``chosen``, the chosen candidate's name, and
    ``distortions``, each candidate's by name, in order (:data:`SCREENED`; a candidate
    outside the window is left out)."""
    candidates = screen_candidates(core, answer, target)
    inside = np.flatnonzero(in_window(core, candidates, target))
    if not len(inside):
        return candidates[0], {"chosen": SCREENED[0], "distortions": {}}
    distortion = core.calibration_distortion(candidates[inside])  # none spent on the rest
    chosen = int(inside[np.argmin(distortion)])
    seen = {SCREENED[i]: float(value) for i, value in zip(inside, distortion, strict=True)}
    return candidates[chosen], {"chosen": SCREENED[chosen], "distortions": seen}


def screens(screen: bool | str, task) -> bool:
    """Whether the ``screen`` option (``True``, ``False`` or ``"auto"``) screens on ``task``:
    ``"auto"`` where its metric is a function of the outputs on a data batch
    (:class:`~prunegym.tasks.capabilities.OutputEvaluation`)."""
    return isinstance(task, OutputEvaluation) if screen == "auto" else bool(screen)
