"""Reference controllers for the pendulum: random actions, and energy-shaping swing-up with
LQR balance (the classical anchor for what the task allows).

Pendulum-v1 dynamics: θ̈ = (3g/2l)·sin θ + (3/ml²)·u = a·sin θ + b·u with g = 10, m = l = 1,
θ = 0 upright, |u| ≤ 2, time step 0.05 s.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_discrete_are

A_GRAVITY = 15.0  # 3g / 2l
B_TORQUE = 3.0  # 3 / ml²
DT = 0.05
MAX_TORQUE = 2.0


def random_controller(seed: int = 0):
    """Uniform random actions in [−1, 1] (scaled to ±2 N·m by the runner)."""
    rng = np.random.default_rng(seed)

    def controller(observations: np.ndarray, states: np.ndarray) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, (len(states), 1))

    return controller


def lqr_gain(dt: float = DT, q=(10.0, 1.0), r: float = 0.1) -> np.ndarray:
    """Discrete LQR gain ``K (1, 2)`` for the pendulum linearised upright (semi-implicit Euler,
    as Pendulum-v1 integrates)."""
    a = np.array([[1.0 + A_GRAVITY * dt * dt, dt], [A_GRAVITY * dt, 1.0]])
    b = np.array([[B_TORQUE * dt * dt], [B_TORQUE * dt]])
    p = solve_discrete_are(a, b, np.diag(q), np.array([[r]]))
    return np.linalg.solve(np.array([[r]]) + b.T @ p @ b, b.T @ p @ a)


def energy_lqr_controller(gain: float = 1.0, switch_angle: float = 0.6):
    """Energy-shaping swing-up, LQR balance near upright. Reads the true state.

    Energy ``E = ½θ̇² + a·cos θ`` is ``a`` when balanced upright at rest; ``dE/dt = b·u·θ̇``,
    so ``u = k·(a − E)·θ̇`` pumps energy in until the pendulum reaches the top, where the LQR
    takes over inside ``|θ| < switch_angle`` rad.
    """
    k_lqr = lqr_gain()

    def controller(observations: np.ndarray, states: np.ndarray) -> np.ndarray:
        theta = (states[:, 0] + np.pi) % (2 * np.pi) - np.pi
        velocity = states[:, 1]
        energy = 0.5 * velocity**2 + A_GRAVITY * np.cos(theta)
        swing = gain * (A_GRAVITY - energy) * velocity
        swing = np.where(np.abs(velocity) < 1e-3, MAX_TORQUE, swing)  # kick off from rest
        balance = -(np.stack([theta, velocity], axis=1) @ k_lqr.T)[:, 0]
        torque = np.where(np.abs(theta) < switch_angle, balance, swing)
        return (np.clip(torque, -MAX_TORQUE, MAX_TORQUE) / MAX_TORQUE)[:, None]

    return controller
