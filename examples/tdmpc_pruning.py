"""The paper's TD-MPC results in one run: Fig. 4 (magnitude pruning) and Table VII (FD momentum).

    python examples/tdmpc_pruning.py

1. Magnitude pruning, return against sparsity 0–50 %: the same coefficient for every group
   with L2 ranking and no compensation (what ``torch.nn.utils.prune.ln_structured`` does
   layer by layer, the paper's baseline), and Torch-Pruning's global magnitude pruner.
2. FD momentum at 20 % ± 1 %, with ``compensated`` ranking + ``mean`` compensation and with
   ``l2`` ranking and no compensation (Table VII).
3. The same comparison at 40 %.

Solvers search on the mean return of 8 fixed-seed episodes acting with the policy prior π
(the search episodes). Every chosen result is then scored on 100 held-out test episodes
(other seeds) with its 95 % interval, the paired difference from the dense agent on the same
episodes, and the normalised score (random 0, dense 1) with its paired interval. Solvers are
compared by paired differences on the test episodes; a difference is stated only where its
interval excludes zero. With ``plan_check`` each row also gives the search return when the
pruned agent plans with MPPI instead (which also uses dynamics, reward and Q). Writes
``tdmpc_pruning/curve.png`` and ``tdmpc_pruning/results.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prunegym.agents import make_agent, prunes_its_own_model
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks.intervals import describe_difference, paired_difference
from prunegym.tasks.tdmpc_pendulum import TDMPCPendulumTask


@dataclass
class Args:
    checkpoint: str | None = None
    """TD-MPC checkpoint (None: the shipped agent)."""
    episodes: int = 8
    """Fixed-seed search episodes per evaluation."""
    test_episodes: int = 100
    """Held-out episodes that score each result."""
    curve_targets: list[float] = field(default_factory=lambda: [i / 20 for i in range(11)])
    """Sparsity targets of the magnitude curve (0 to 50 %)."""
    targets: list[float] = field(default_factory=lambda: [0.2, 0.4])
    """Targets of the FD momentum comparison."""
    tolerance: float = 0.01
    """Window half-width."""
    plan_check: bool = False
    """Also evaluate each final model with MPPI planning (about a minute per row)."""
    out_dir: str = "tdmpc_pruning"
    """Where the PNG and JSON go."""
    progress: bool = True
    """Progress bars."""


def _plan_return(plan_task, env, result) -> float:
    if prunes_its_own_model(result.solver):
        return float("nan")
    env.step(np.asarray(result.coefficients))
    value = plan_task.evaluate(env.model)["return"]
    env.reset()
    return value


def main(args: Args) -> dict:
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    task = TDMPCPendulumTask(
        args.checkpoint, episodes=args.episodes, test_episodes=args.test_episodes
    )
    plan_task = (
        TDMPCPendulumTask(args.checkpoint, episodes=args.episodes, mode="plan")
        if args.plan_check
        else None
    )
    print(
        f"search episodes: dense return {task.dense_return:.1f}, random "
        f"{task.random_return:.1f} ({args.episodes} episodes, policy prior)"
    )
    if plan_task:
        print(f"dense return when planning: {plan_task.dense_return:.1f}")
    l2 = PruneEnv(task, criterion="l2", compensation="none", tolerance=args.tolerance)
    compensated = PruneEnv(
        task, criterion="compensated", compensation="mean", tolerance=args.tolerance
    )

    curve = {"uniform l2 (magnitude)": [], "torch-pruning (global magnitude)": []}
    for target in args.curve_targets:
        l2.reset(options={"target": target})
        for label, name in zip(curve, ("uniform", "torch-pruning"), strict=True):
            curve[label].append(make_agent(name, progress=False).run(l2))
    dense_test = l2.test_evaluation()[0]
    print(
        f"test episodes: dense return {dense_test['return']:.1f} ± "
        f"{dense_test['return_ci95']:.1f}, random {dense_test['random_return']:.1f} "
        f"({args.test_episodes} episodes, 95 % interval)"
    )
    print(
        "\n| target | "
        + " | ".join(f"{k}: sparsity, test return, paired Δ vs dense, score" for k in curve)
        + " |"
    )
    print("|---|" + "---|" * len(curve))
    for index, target in enumerate(args.curve_targets):
        cells = [_curve_cell(curve[k][index]) for k in curve]
        print(f"| {target:.2f} | " + " | ".join(cells) + " |")
    print("\npaired differences at each target, torch-pruning − uniform (test episodes):")
    for target, first, second in zip(args.curve_targets, *curve.values(), strict=True):
        delta, half_width = paired_difference(second.test_values, first.test_values)
        print(f"  {target:.2f}: {describe_difference(delta, half_width)}")

    rows = []
    for target in args.targets:
        runs = [
            ("fd-momentum", compensated, "compensated + mean"),
            ("fd-momentum", l2, "l2 + none"),
            ("uniform", l2, "l2 + none"),
            ("torch-pruning", l2, "own (magnitude, none)"),
        ]
        for name, env, setup in runs:
            env.reset(options={"target": target})
            result = make_agent(name, progress=args.progress).run(env)
            plan = _plan_return(plan_task, env, result) if plan_task else float("nan")
            rows.append((result, setup, plan))
    print(
        "\n| solver | ranking + compensation | target | search return (8) | test return "
        f"({args.test_episodes}) | paired Δ vs dense | test score | planning return | sparsity | "
        "feasible | iterations | evaluations | seconds | coefficients |"
    )
    print("|" + "---|" * 14)
    for result, setup, plan in rows:
        test = result.test_metrics
        iterations = result.details.get("iterations", "")
        coefficients = "[" + ", ".join(f"{c:.2f}" for c in result.coefficients) + "]"
        print(
            f"| {result.solver} | {setup} | {result.target:.0%} | {result.metric:.1f} | "
            f"{test['return']:.1f} ± {test['return_ci95']:.1f} | "
            f"{describe_difference(test['return_vs_dense'], test['return_vs_dense_ci95'])} | "
            f"{test['normalized']:.3f} ± {test['normalized_ci95']:.3f} | {plan:.1f} | "
            f"{result.sparsity:.2%} | {'yes' if result.feasible else 'no'} | {iterations} | "
            f"{result.evaluations} | {result.wall_seconds:.1f} | {coefficients} |"
        )
    print("\npaired differences on the test episodes, FD momentum (compensated + mean) − each:")
    for target in args.targets:
        at = [(r, setup) for r, setup, _ in rows if r.target == target]
        best = next(r for r, setup in at if setup == "compensated + mean")
        for other, setup in at:
            if other is not best:
                delta, half_width = paired_difference(best.test_values, other.test_values)
                print(
                    f"  {target:.0%} vs {other.solver} ({setup}): "
                    f"{describe_difference(delta, half_width)}"
                )
    _plot(out / "curve.png", curve, rows, task)
    summary = {
        "dense_return": task.dense_return,
        "random_return": task.random_return,
        "plan_dense_return": plan_task.dense_return if plan_task else None,
        "dense_test": dense_test,
        "curve": {label: [r.to_dict() for r in results] for label, results in curve.items()},
        "results": [
            {**r.to_dict(), "setup": setup, "plan_return": plan} for r, setup, plan in rows
        ],
    }
    (out / "results.json").write_text(json.dumps(summary, indent=1, allow_nan=True))
    print(f"\ntotal {time.perf_counter() - started:.0f} s; saved {out}/curve.png, results.json")
    return summary


def _curve_cell(result) -> str:
    """Sparsity, test return ± interval, paired difference from dense, test score."""
    test = result.test_metrics
    delta = describe_difference(test["return_vs_dense"], test["return_vs_dense_ci95"])
    return (
        f"{result.sparsity:.3f}, {test['return']:.1f} ± {test['return_ci95']:.1f}, {delta}, "
        f"{test['normalized']:.3f}"
    )


def _plot(path: Path, curve: dict, rows: list, task) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4))
    for label, results in curve.items():
        axis.errorbar(
            [r.sparsity for r in results], [r.test_metrics["return"] for r in results],
            yerr=[r.test_metrics["return_ci95"] for r in results], fmt="o-", capsize=3,
            label=label,
        )  # fmt: skip
    styles = {"compensated + mean": ("*", 15, -0.006), "l2 + none": ("D", 8, 0.006)}
    for result, setup, _ in rows:
        if result.solver == "fd-momentum":
            marker, size, shift = styles[setup]  # side by side, so that neither hides the other
            axis.errorbar(
                result.sparsity + shift, result.test_metrics["return"],
                yerr=result.test_metrics["return_ci95"], fmt=marker, markersize=size,
                capsize=3, label=f"FD momentum, {setup}, {result.target:.0%}", zorder=3,
            )  # fmt: skip
    dense = rows[0][0].dense_test_metrics
    axis.axhline(dense["return"], color="gray", linestyle="--", label="dense (95 % band)")
    axis.axhspan(
        dense["return"] - dense["return_ci95"], dense["return"] + dense["return_ci95"],
        color="gray", alpha=0.15,
    )  # fmt: skip
    axis.set_xlabel("achieved sparsity")
    axis.set_ylabel("test return, 95 % interval (policy prior π)")
    episodes = int(dense["episodes"])
    axis.set_title(
        f"Pruning the TD-MPC pendulum agent: {episodes} held-out episodes\n"
        f"(random policy: {dense['random_return']:.0f})", fontsize=10,
    )  # fmt: skip
    axis.legend(fontsize=7)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    main(Args())
