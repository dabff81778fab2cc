"""The 1-D diffusion–sorption equation (PDEBench's coefficients), solved here with scipy.

Equation, on ``x ∈ [0, 1]``, ``t ∈ [0, 500]``::

    ∂u/∂t = D / R(u) · ∂²u/∂x²,   R(u) = 1 + (1 − φ)/φ · ρ_s · k · n_f · u^(n_f − 1)

which is ``∂/∂t [u + s(u)] = D ∂²u/∂x²`` with the Freundlich sorbed amount
``s(u) = (1 − φ)/φ · ρ_s · k · u^(n_f)``. Coefficients (PDEBench): ``D = 5e-4``, ``φ = 0.29``,
``ρ_s = 2880``, ``k = 3.5e-4``, ``n_f = 0.874``. Boundaries: ``u(0, t) = 1`` (a constant
source, as in PDEBench) and no flux at ``x = 1`` (``closed=True`` closes ``x = 0`` as well).

Each sample draws the parameters ``μ = (D, k)`` log-uniformly within a factor 2 of the values
above and an initial condition ``u₀ ~ U(0, 0.2)`` per cell (PDEBench's recipe). The solver is a
finite-volume method of lines on 64 cells with ``solve_ivp`` (BDF); the output is ``u`` at 10
times ``t = 50, 100, …, 500``. ``u`` is floored at ``1e-6`` inside ``R`` (``R`` is singular at
0). Everything is seeded: the same seed gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

POROSITY, RHO_S, N_F = 0.29, 2880.0, 0.874
D_REF, K_REF = 5e-4, 3.5e-4
T_END, TIMES, CELLS, SAMPLES = 500.0, 10, 64, 100
FLOOR = 1e-6


@dataclass(frozen=True)
class DiffusionSorptionData:
    """``u`` ``(S, T, X)`` float64 at ``times`` ``(T,)`` and cell centres ``x`` ``(X,)``;
    ``mu`` ``(S, 2)`` = ``(D, k)``; ``u0`` ``(S, X)``."""

    u: np.ndarray
    times: np.ndarray
    x: np.ndarray
    mu: np.ndarray
    u0: np.ndarray


def sorbed(u: np.ndarray, k: float) -> np.ndarray:
    """Freundlich sorbed amount ``s(u)`` per unit pore volume."""
    return (1 - POROSITY) / POROSITY * RHO_S * k * np.maximum(u, 0.0) ** N_F


def retardation(u: np.ndarray, k: float) -> np.ndarray:
    """``R(u) = 1 + s'(u)`` with ``u`` floored at ``1e-6``."""
    return 1 + (1 - POROSITY) / POROSITY * RHO_S * k * N_F * np.maximum(u, FLOOR) ** (N_F - 1)


def solve(
    u0: np.ndarray, diffusion: float, k: float, times: np.ndarray, closed: bool = False
) -> np.ndarray:
    """``u`` ``(len(times), X)`` from the initial cell values ``u0`` ``(X,)``."""
    cells = len(u0)
    dx = 1.0 / cells

    def rhs(_, u):
        flux = np.empty(cells + 1)  # D ∂u/∂x at the cell faces, left to right
        flux[1:-1] = diffusion * np.diff(u) / dx
        flux[0] = 0.0 if closed else diffusion * (u[0] - 1.0) / (dx / 2)
        flux[-1] = 0.0
        return np.diff(flux) / dx / retardation(u, k)

    solution = solve_ivp(rhs, (0.0, float(times[-1])), u0, method="BDF", t_eval=times,
                         rtol=1e-6, atol=1e-9)  # fmt: skip
    if not solution.success:
        raise RuntimeError(f"diffusion-sorption solver failed: {solution.message}")
    return solution.y.T


def generate(samples: int = SAMPLES, seed: int = 0, cells: int = CELLS) -> DiffusionSorptionData:
    """The seeded data set (about 0.1 s per sample on one core)."""
    rng = np.random.default_rng(seed)
    times = np.linspace(T_END / TIMES, T_END, TIMES)
    x = (np.arange(cells) + 0.5) / cells
    mu = np.stack([D_REF * 2 ** rng.uniform(-1, 1, samples),
                   K_REF * 2 ** rng.uniform(-1, 1, samples)], axis=1)  # fmt: skip
    u0 = rng.uniform(0.0, 0.2, (samples, cells))
    u = np.stack([solve(u0[s], mu[s, 0], mu[s, 1], times) for s in range(samples)])
    return DiffusionSorptionData(u, times, x, mu, u0)


def total_mass(u: np.ndarray, k: float) -> np.ndarray:
    """``∫ (u + s(u)) dx`` of ``(..., X)`` cell values: dissolved plus sorbed."""
    return (u + sorbed(u, k)).mean(axis=-1)
