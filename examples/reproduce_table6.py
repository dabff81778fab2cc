"""Reproduce Table VI of Sundaram et al. in one run, with every baseline beside it.

    python examples/reproduce_table6.py

On the MNIST autoencoder at 20 % ± 1 % it runs grid search (n = 10), FD momentum, random
search (with as many evaluations as FD momentum used), the norm-based and uniform allocations,
each with ``l2`` ranking (no compensation) and with ``compensated`` ranking plus ``mean``
compensation, and Torch-Pruning's global magnitude pruner. Then FD momentum and Torch-Pruning
again at 40 % and 60 %. It prints a markdown table, the grid pre-filter counts beside the
paper's 252, saves every Result as JSON and a PNG of reconstructions (original, dense, one row
per solver at 20 %, then FD momentum and Torch-Pruning at 40 % and 60 %).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from prunegym.agents import make_agent
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks import make_task

PAPER_SURVIVORS = 252  # Sundaram et al., §V-A: 5 groups, 10 points, 20 % ± 1 %


@dataclass
class Args:
    task: str = "mnist-ae"
    """Task name (the table and picture are meant for mnist-ae)."""
    target: float = 0.2
    """Main sparsity target."""
    tolerance: float = 0.01
    """Window half-width."""
    extra_targets: tuple[float, ...] = (0.4, 0.6)
    """Targets where FD momentum meets Torch-Pruning again."""
    grid_points: int = 10
    """Grid values per coefficient."""
    setups: tuple[tuple[str, str], ...] = (("l2", "none"), ("compensated", "mean"))
    """(ranking criterion, compensation) pairs."""
    out_dir: str = "table6"
    """Where the JSON results and the PNG go."""
    progress: bool = True
    """Show progress bars."""
    solvers: list[str] = field(
        default_factory=lambda: ["grid", "fd-momentum", "random", "norm", "uniform"]
    )


def _options(name: str, args: Args, fd_evaluations: int | None) -> dict:
    if name == "grid":
        return {"points": args.grid_points}
    if name == "random":
        return {"samples": fd_evaluations or 50}
    return {}


def _row(result, setup: str) -> str:
    metrics, dense = result.metrics, result.dense_metrics
    name = result.metric_name
    other = next((key for key in metrics if key != name), name)
    coefficients = "[" + ", ".join(f"{c:.3f}" for c in result.coefficients) + "]"
    return (
        f"| {result.solver} | {setup} | {result.target:.0%} | {metrics[name]:.2f} | "
        f"{metrics[other]:.6f} | {dense[name]:.2f} | {dense[other]:.6f} | "
        f"{result.sparsity:.2%} | {'yes' if result.feasible else 'no'} | {result.evaluations} | "
        f"{result.wall_seconds:.2f} | {coefficients} |"
    )


def main(args: Args) -> list:
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    task = make_task(args.task)
    rows, results, pictures = [], [], {}
    started = time.perf_counter()
    main_env = None
    for criterion, compensation in args.setups:
        env = PruneEnv(
            task,
            target=args.target,
            tolerance=args.tolerance,
            criterion=criterion,
            compensation=compensation,
        )
        setup = f"{criterion} + {compensation}"
        fd_evaluations = None
        for name in args.solvers:
            options = _options(name, args, fd_evaluations)
            result = make_agent(name, progress=args.progress, **options).run(env)
            if name == "fd-momentum":
                fd_evaluations = result.evaluations
            if name == "grid":
                details = result.details
                print(
                    f"grid pre-filter ({setup}): {details['survivors']} of "
                    f"{details['combinations']} combinations within {args.target:.0%} ± "
                    f"{details['prefilter_window']:.0%} by exact count, "
                    f"{details['survivors_estimate']} by the paper's estimate Σc_i s_i/‖θ‖₀; "
                    f"the paper kept {PAPER_SURVIVORS}"
                )
            rows.append(_row(result, setup))
            results.append(result)
            if hasattr(task, "reconstruct"):
                env.step(result.coefficients)
                pictures[f"{name} ({setup})"] = task.reconstruct(env.model)
                env.reset()
        main_env = env
    for target in (args.target, *args.extra_targets):
        main_env.reset(options={"target": target})
        names = ["torch-pruning"] if target == args.target else ["fd-momentum", "torch-pruning"]
        for name in names:
            agent = make_agent(name, progress=args.progress)
            result = agent.run(main_env, None)
            label = "own (magnitude, none)" if name == "torch-pruning" else setup
            rows.append(_row(result, label))
            results.append(result)
            if not hasattr(task, "reconstruct"):
                continue
            label = f"{name} at {target:.0%}"
            if name == "torch-pruning":
                pictures[label] = task.reconstruct(agent.pruned_model)
            elif target != args.target:
                main_env.step(result.coefficients)
                pictures[label] = task.reconstruct(main_env.model)
    name = results[0].metric_name
    other = next((key for key in results[0].metrics if key != name), name)
    print(
        f"| solver | ranking + compensation | target | {name} | {other} | dense {name} | "
        f"dense {other} | sparsity | feasible | evaluations | seconds | coefficients |"
    )
    print("|" + "---|" * 12)
    print("\n".join(rows))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    (out / "results.json").write_text(
        json.dumps([r.to_dict() for r in results], indent=1, allow_nan=True)
    )
    if pictures:
        from prunegym.results.plots import save_reconstruction_grid

        main_env.reset()
        rows_to_draw = {
            "original": task.eval_images,
            "dense": task.reconstruct(main_env.model),
            **pictures,
        }
        path = save_reconstruction_grid(
            out / "reconstructions.png",
            rows_to_draw,
            title=f"{task.name}: sparsity {args.target:.0%} ± {args.tolerance:.0%} unless named",
        )
        print(f"saved {path} and {out / 'results.json'}")
    return results


if __name__ == "__main__":
    main(Args())
