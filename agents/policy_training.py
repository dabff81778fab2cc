"""Training a :class:`~prunegym.agents.learned_policy.SetPolicy` across tasks and targets.

One episode is one-shot: a task and a target are drawn, the policy reads the features
observation, its directions are scaled onto the target (exact counts, so the sparsity lands in
the window), and the reward is the environment's. A one-step episode with a continuous action
is a contextual bandit, so the policy is trained by evolution strategies (antithetic Gaussian
perturbations of all weights, centred-rank fitness, Adam), a compact loop in the style of
CleanRL rather than SB3, whose buffers need one fixed observation shape across tasks. Every
generation's candidates of a task at one target are evaluated in one
:meth:`PruneEnv.evaluate_batch` call.

Fitness is ranked separately for each (task, target) pair, so rewards of other scales weigh
the same; each pair adds one ranking, so a task weighs by the targets it draws per generation
(``RECIPE["tasks"]``: 4 for the autoencoder, 1 for the slow convnet and TD-MPC).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch

from prunegym.agents.allocation import scale_to_target
from prunegym.agents.learned_policy import SetPolicy, observations
from prunegym.tasks.options import is_count

#: How the shipped policy was trained: every shipped task at channel granularity with its
#: default ranking and compensation, the targets drawn per task and generation.
RECIPE = {
    "tasks": {  # task name: targets per generation (slow evaluations get fewer)
        "mnist-ae": 4, "toy": 2, "mnist-classifier": 2, "diffusion-sorption": 2,
        "mnist-convnet": 1, "tdmpc-pendulum": 1,
    },
    "generations": 150, "pairs": 16, "sigma": 0.05, "learning_rate": 0.03,
    "target_range": [0.05, 0.75], "hidden": 32, "seed": 0,
}  # fmt: skip


def centred_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks of ``values`` ``(K,)`` mapped to ``[−0.5, 0.5]``; ties share their average rank,
    so two candidates with equal rewards (often: equal channel counts) cancel in the update."""
    from scipy.stats import rankdata  # imported here: scipy.stats takes ~0.5 s to import

    ranks = rankdata(values, method="average") - 1.0
    return ranks / max(len(values) - 1, 1) - 0.5


def train_policy(
    envs: dict,
    generations: int = 150,
    pairs: int = 16,
    sigma: float = 0.05,
    learning_rate: float = 0.03,
    targets_per_task: int | dict = 4,
    target_range: tuple[float, float] = (0.05, 0.75),
    hidden: int = 32,
    seed: int = 0,
    tasks_per_generation: int | None = None,
    writer=None,
    progress: Callable[[int, dict], None] | None = None,
) -> tuple[SetPolicy, list[dict]]:
    """Train a policy on ``envs`` (task name → channel-granularity ``PruneEnv``).

    Args:
        generations: Evolution-strategy updates.
        pairs: Antithetic pairs per generation (``2·pairs`` candidate policies).
        sigma: Standard deviation of the weight perturbations.
        learning_rate: Adam step size on the weights.
        targets_per_task: Targets drawn per task and generation (an int, or a count for
            every task name).
        target_range: Targets are drawn uniformly from it, capped at each task's largest
            reachable sparsity.
        tasks_per_generation: Tasks drawn (without replacement) from ``envs`` for each
            generation; ``None``: every task, every generation. A large pool (the zoo's
            networks) then costs per generation what this many tasks do.
        writer: Optional TensorBoard writer
            (:func:`~prunegym.agents.tensorboard.tensorboard_writer`): per task, the mean
            reward, metric and sparsity of each generation's candidates.
        progress: Called with ``(generation, row)`` after each generation.

    Returns:
        ``(policy, history)``: the trained policy (CPU, eval mode) and one row per generation.
    """
    counts = _check_settings(envs, generations, pairs, hidden, sigma, learning_rate,
                             targets_per_task, target_range)  # fmt: skip
    if tasks_per_generation is not None and not 1 <= tasks_per_generation <= len(envs):
        raise ValueError(
            f"tasks_per_generation must lie in [1, {len(envs)}], got {tasks_per_generation}"
        )
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[]):  # seeded, and the caller's torch state untouched
        torch.manual_seed(seed)
        policy = SetPolicy(hidden=hidden)
    theta = policy.vector()
    optimiser = torch.optim.Adam([theta.requires_grad_()], lr=learning_rate)
    history = []
    started = time.perf_counter()
    for generation in range(1, generations + 1):
        noise = torch.from_numpy(rng.standard_normal((pairs, len(theta))).astype(np.float32))
        candidates = torch.cat([theta.detach() + sigma * noise, theta.detach() - sigma * noise])
        fitness = np.zeros(len(candidates))
        row: dict = {"generation": generation}
        names = list(envs)
        if tasks_per_generation is not None:
            drawn = set(rng.choice(len(names), tasks_per_generation, replace=False).tolist())
            names = [name for i, name in enumerate(names) if i in drawn]
        for name in names:
            env = envs[name]
            high = min(target_range[1], env.max_sparsity - env.tolerance)
            targets = rng.uniform(target_range[0], high, counts[name])
            rewards, infos = _rewards(policy, candidates, env, targets)
            for column in rewards.T:  # one (task, target) pair: its own ranking
                fitness += centred_ranks(column)
            row[name] = {
                "reward": float(rewards.mean()),
                "metric": float(np.mean([info["metric"] for info in infos])),
                "sparsity_error": float(np.mean([abs(i["sparsity"] - i["target"]) for i in infos])),
            }
        gradient = (
            (fitness[:pairs] - fitness[pairs:]) @ noise.double().numpy() / (2 * pairs * sigma)
        )
        optimiser.zero_grad()
        theta.grad = -torch.from_numpy(gradient.astype(np.float32))  # Adam minimises
        optimiser.step()
        row["seconds"] = time.perf_counter() - started
        history.append(row)
        if writer is not None:
            for name, values in row.items():
                if isinstance(values, dict):
                    for key, value in values.items():
                        writer.add_scalar(f"{name}/{key}", value, generation)
        if progress is not None:
            progress(generation, row)
    policy.load_vector(theta.detach())
    return policy.eval(), history


def _check_settings(
    envs, generations, pairs, hidden, sigma, learning_rate, targets_per_task, target_range
) -> dict[str, int]:
    """One-line ``ValueError`` for a bad setting of :func:`train_policy`, before any training;
    returns the targets to draw per task name."""
    for name, value in (("generations", generations), ("pairs", pairs), ("hidden", hidden)):
        if not is_count(value, 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    for name, value in (("sigma", sigma), ("learning_rate", learning_rate)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if isinstance(targets_per_task, dict):
        missing = sorted(set(envs) - set(targets_per_task))
        if missing:
            raise ValueError(f"targets_per_task gives no count for the tasks {missing}")
        counts = {name: targets_per_task[name] for name in envs}
    else:
        counts = dict.fromkeys(envs, targets_per_task)
    for name, count in counts.items():
        if not is_count(count, 1):
            raise ValueError(
                f"targets_per_task for {name!r} must be an integer >= 1, got {count!r}"
            )
    low, high = (float(bound) for bound in target_range)
    if not 0.0 <= low <= high < 1.0:
        raise ValueError(f"target_range must satisfy 0 <= low <= high < 1, got {target_range!r}")
    for name, env in envs.items():
        if low > env.max_sparsity - env.tolerance:
            raise ValueError(
                f"task {name!r} cannot reach the lowest target {low} within its tolerance (its "
                f"largest sparsity is {env.max_sparsity:.4f}); lower target_range or leave it out"
            )
    return counts


@torch.no_grad()
def _rewards(policy: SetPolicy, candidates: torch.Tensor, env, targets: np.ndarray):
    """Rewards ``(K, T)`` of the candidate weight vectors at each target, in one batch."""
    inputs = observations(env, targets)
    directions = []
    for vector in candidates:
        policy.load_vector(vector)
        directions.append(policy(*inputs).double().numpy())
    directions = np.concatenate(directions)  # (K·T, m), candidate-major
    wanted = np.tile(targets, len(candidates))
    coefficients = scale_to_target(env, directions, wanted)
    previous = env.target
    infos = []
    try:
        for target in np.unique(wanted):  # the reward's penalty is about the env's target
            env.target = float(target)
            rows = np.flatnonzero(wanted == target)
            for index, info in zip(rows, env.evaluate_batch(coefficients[rows]), strict=True):
                info["target"] = float(target)
                infos.append((index, info))
    finally:
        env.target = previous
    infos = [info for _, info in sorted(infos, key=lambda pair: pair[0])]
    rewards = np.array([info["reward"] for info in infos]).reshape(len(candidates), len(targets))
    return rewards, infos
