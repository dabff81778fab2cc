"""Reference controllers for the pendulum: random actions, energy-shaping swing-up with LQR
balance (the classical anchor for what the task allows), and planning with the exact equations
(how much better any controller could do).

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
MAX_SPEED = 8.0


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


def pendulum_step(theta: np.ndarray, speed: np.ndarray, torque: np.ndarray):
    """One Pendulum-v1 step for arrays of any shape: the new angle (rad) and speed (rad/s),
    and the step's cost (the negative reward) from the old angle, speed and ``torque`` (N·m,
    within ±2)."""
    upright = (theta + np.pi) % (2 * np.pi) - np.pi
    cost = upright * upright + 0.1 * speed * speed + 0.001 * torque * torque
    speed = np.clip(speed + (A_GRAVITY * np.sin(theta) + B_TORQUE * torque) * DT,
                    -MAX_SPEED, MAX_SPEED)  # fmt: skip
    return theta + speed * DT, speed, cost


def sequence_costs(theta: np.ndarray, speed: np.ndarray, actions: np.ndarray, repeat: int = 2):
    """Summed Pendulum-v1 costs ``(rows, samples)`` of playing ``actions (rows, samples,
    horizon)`` in [−1, 1] (× 2 N·m, each held ``repeat`` steps) from the states ``theta,
    speed (rows,)``."""
    theta = np.repeat(theta[:, None], actions.shape[1], axis=1)
    speed = np.repeat(speed[:, None], actions.shape[1], axis=1)
    total = np.zeros_like(theta)
    for index in range(actions.shape[2]):
        torque = actions[:, :, index] * MAX_TORQUE
        for _ in range(repeat):
            theta, speed, cost = pendulum_step(theta, speed, torque)
            total += cost
    return total


def planning_controller(
    horizon: int = 30,
    samples: int = 64,
    elites: int = 8,
    iterations: int = 3,
    repeat: int = 2,
    seed: int = 0,
):
    """Cross-entropy planning over Pendulum-v1's own equations from the true state: an
    estimate of the best return the task allows (no learned model, no pixels).

    Each decision it samples ``samples`` torque sequences of ``horizon`` decisions (each held
    for ``repeat`` steps, the task's action repeat) around its current plan, rolls them out
    with the exact dynamics and cost (:func:`sequence_costs`), and refits the plan to the
    ``elites`` cheapest, ``iterations`` times; it acts with the cheapest sequence seen, whose
    shifted remainder starts the next decision's plan. The sequence that
    :func:`energy_lqr_controller` would play is always among the candidates, so the plan costs
    no more than it over the horizon. All rows (episodes) plan at once. The warm start is kept
    between calls: use one controller per run of episodes.
    """
    for name, value, least in (("horizon", horizon, 1), ("samples", samples, 2),
                               ("elites", elites, 1), ("iterations", iterations, 1),
                               ("repeat", repeat, 1)):  # fmt: skip
        if not isinstance(value, int) or value < least:
            raise ValueError(f"planning_controller {name} must be an integer >= {least}")
    rng = np.random.default_rng(seed)
    plan: np.ndarray | None = None
    classical = energy_lqr_controller()

    def classical_sequence(theta: np.ndarray, speed: np.ndarray) -> np.ndarray:
        """``(rows, horizon)`` actions in [−1, 1] of the classical controller from the states
        ``theta, speed (rows,)``."""
        actions = np.zeros((len(theta), horizon))
        for index in range(horizon):
            actions[:, index] = classical(None, np.stack([theta, speed], axis=1))[:, 0]
            for _ in range(repeat):
                theta, speed, _ = pendulum_step(theta, speed, actions[:, index] * MAX_TORQUE)
        return actions

    def controller(observations: np.ndarray, states: np.ndarray) -> np.ndarray:
        nonlocal plan
        rows = len(states)
        if plan is None or len(plan) != rows:
            plan = np.zeros((rows, horizon))
        mean, spread = plan, np.full((rows, horizon), 0.5)
        best, best_cost = plan.copy(), np.full(rows, np.inf)
        theta, speed = states[:, 0].astype(np.float64), states[:, 1].astype(np.float64)
        guide = classical_sequence(theta, speed)
        for _ in range(iterations):
            noise = rng.standard_normal((rows, samples, horizon))
            candidates = np.clip(mean[:, None] + spread[:, None] * noise, -1.0, 1.0)
            candidates[:, 0] = best  # the best so far stays in the running
            candidates[:, 1] = guide
            cost = sequence_costs(theta, speed, candidates, repeat)
            order = np.argsort(cost, axis=1)[:, :elites]
            chosen = np.take_along_axis(candidates, order[:, :, None], axis=1)
            mean, spread = chosen.mean(axis=1), np.maximum(chosen.std(axis=1), 0.05)
            cheapest = np.take_along_axis(cost, order[:, :1], axis=1)[:, 0]
            better = cheapest < best_cost
            best[better], best_cost[better] = chosen[better, 0], cheapest[better]
        plan = np.concatenate([best[:, 1:], best[:, -1:]], axis=1)
        return best[:, :1]

    return controller
