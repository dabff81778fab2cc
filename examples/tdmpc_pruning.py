"""The paper's TD-MPC results in one run: Fig. 4 (magnitude pruning) and Table VII (FD momentum).

    python examples/tdmpc_pruning.py

1. Magnitude pruning, return against sparsity 0–50 %: the same coefficient for every group
   with L2 ranking and no compensation (what ``torch.nn.utils.prune.ln_structured`` does
   layer by layer, the paper's baseline), and Torch-Pruning's global magnitude pruner.
2. FD momentum at 20 % ± 1 %, with ``compensated`` ranking + ``mean`` compensation and with
   ``l2`` ranking and no compensation (Table VII).
3. The same comparison at 40 %.

The metric is the mean return of 8 fixed-seed episodes acting with the policy prior π. Every
row also gives the normalised score (random 0, dense 1); with ``plan_check`` also the return
when the pruned agent plans with MPPI instead (which also uses dynamics, reward and Q).
Writes ``tdmpc_pruning/curve.png`` and ``tdmpc_pruning/results.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prunegym.agents import make_agent
from prunegym.env import PruneEnv
from prunegym.tasks.tdmpc_pendulum import TDMPCPendulumTask


@dataclass
class Args:
    checkpoint: str | None = None
    """TD-MPC checkpoint (None: the shipped agent)."""
    episodes: int = 8
    """Fixed-seed episodes per evaluation."""
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
    if result.solver == "torch-pruning":
        return float("nan")
    env.step(np.asarray(result.coefficients))
    value = plan_task.evaluate(env.model)["return"]
    env.reset()
    return value


def main(args: Args) -> dict:
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    task = TDMPCPendulumTask(args.checkpoint, episodes=args.episodes)
    plan_task = (
        TDMPCPendulumTask(args.checkpoint, episodes=args.episodes, mode="plan")
        if args.plan_check
        else None
    )
    print(
        f"dense return {task.dense_return:.1f}, random {task.random_return:.1f} "
        f"({args.episodes} episodes, policy prior)"
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
            result = make_agent(name, progress=False).run(l2)
            curve[label].append(
                (result.sparsity, result.metric, result.metrics["normalized"], result.feasible)
            )
    print("\n| target | " + " | ".join(f"{k}: sparsity, return, score" for k in curve) + " |")
    print("|---|" + "---|" * len(curve))
    for index, target in enumerate(args.curve_targets):
        cells = [f"{s:.3f}, {r:.1f}, {n:.2f}" for s, r, n, _ in (curve[k][index] for k in curve)]
        print(f"| {target:.2f} | " + " | ".join(cells) + " |")

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
        "\n| solver | ranking + compensation | target | return | score | planning return | "
        "sparsity | feasible | iterations | evaluations | seconds | coefficients |"
    )
    print("|" + "---|" * 12)
    for result, setup, plan in rows:
        iterations = result.details.get("iterations", "")
        coefficients = "[" + ", ".join(f"{c:.2f}" for c in result.coefficients) + "]"
        print(
            f"| {result.solver} | {setup} | {result.target:.0%} | {result.metric:.1f} | "
            f"{result.metrics['normalized']:.3f} | {plan:.1f} | {result.sparsity:.2%} | "
            f"{'yes' if result.feasible else 'no'} | {iterations} | {result.evaluations} | "
            f"{result.wall_seconds:.1f} | {coefficients} |"
        )
    _plot(out / "curve.png", curve, rows, task)
    summary = {
        "dense_return": task.dense_return,
        "random_return": task.random_return,
        "plan_dense_return": plan_task.dense_return if plan_task else None,
        "curve": curve,
        "results": [
            {**r.to_dict(), "setup": setup, "plan_return": plan} for r, setup, plan in rows
        ],
    }
    (out / "results.json").write_text(json.dumps(summary, indent=1, allow_nan=True))
    print(f"\ntotal {time.perf_counter() - started:.0f} s; saved {out}/curve.png, results.json")
    return summary


def _plot(path: Path, curve: dict, rows: list, task) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4))
    for label, points in curve.items():
        axis.plot([p[0] for p in points], [p[1] for p in points], "o-", label=label)
    markers = {"compensated + mean": "*", "l2 + none": "D"}
    for result, setup, _ in rows:
        if result.solver == "fd-momentum":
            axis.plot(
                result.sparsity, result.metric, markers[setup], markersize=12,
                label=f"FD momentum, {setup}, {result.target:.0%}",
            )  # fmt: skip
    axis.axhline(task.dense_return, color="gray", linestyle="--", label="dense")
    axis.axhline(task.random_return, color="red", linestyle=":", label="random policy")
    axis.set_xlabel("achieved sparsity")
    axis.set_ylabel("mean episode return (policy prior π)")
    axis.set_title("Pruning the TD-MPC pendulum agent")
    axis.legend(fontsize=7)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    main(Args())
