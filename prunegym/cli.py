"""The ``prunegym`` command line: tasks, groups, evaluate, solve, train."""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from prunegym.pruning import COMPENSATIONS, CRITERIA, MAX_COEFFICIENT
from prunegym.tasks import make_task, task_names


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _make_env(args: argparse.Namespace):
    from prunegym.env import PruneEnv

    kwargs = {
        key: getattr(args, key)
        for key in ("data_root", "checkpoint")
        if getattr(args, key, None) is not None
    }
    _say(f"building {args.task} ({args.criterion} ranking, {args.compensation} compensation)...")
    started = time.perf_counter()
    env = PruneEnv(
        make_task(args.task, **kwargs),
        target=getattr(args, "target", 0.2),
        tolerance=getattr(args, "tolerance", 0.01),
        criterion=args.criterion,
        compensation=args.compensation,
    )
    _say(f"ready in {time.perf_counter() - started:.1f} s: {len(env.groups)} groups")
    return env


def uniform_coefficients(env, target: float, resolution: int = 9501) -> np.ndarray:
    """The uniform ``c·1`` with exact sparsity closest to ``target`` (smallest ``c`` on ties)."""
    levels = np.linspace(0.0, MAX_COEFFICIENT, resolution)
    candidates = np.repeat(levels[:, None], len(env.groups), axis=1)
    best = int(np.argmin(np.abs(env.sparsity_of(candidates) - target)))
    return candidates[best]


def _result_record(env, solver: str, coefficients, info, started: float) -> dict:
    task = env.task
    return {
        "solver": solver,
        "task": task.name,
        "target": env.target,
        "tolerance": env.tolerance,
        "criterion": env.criterion,
        "compensation": env.compensation,
        "coefficients": [round(float(c), 6) for c in coefficients],
        "metric": info["metric"],
        "metric_name": task.metric,
        "metrics": {key: info[key] for key in env.dense_metrics},
        "dense_metric": info["dense_metric"],
        "sparsity": info["sparsity"],
        "sparsity_estimate": info["sparsity_estimate"],
        "feasible": info["feasible"],
        "params_kept": info["params_kept"],
        "params_total": info["params_total"],
        "evaluations": 1,
        "wall_seconds": time.perf_counter() - started,
        "history": [
            {
                "coefficients": [float(c) for c in coefficients],
                "reward": info["reward"],
                "metric": info["metric"],
                "sparsity": info["sparsity"],
            }
        ],
    }


def _print_result(record: dict, groups) -> None:
    metric = record["metric_name"]
    print(f"task         {record['task']}  (solver: {record['solver']})")
    print(f"target       {record['target']:.3f} ± {record['tolerance']:.3f}")
    print(
        f"sparsity     {record['sparsity']:.4f} exact, {record['sparsity_estimate']:.4f} "
        f"paper estimate  ({record['params_kept']:,} of {record['params_total']:,} "
        "parameters kept)"
    )
    print(f"feasible     {record['feasible']}")
    print(f"{metric:<12} {record['metric']:.4f}  (dense {record['dense_metric']:.4f})")
    for key, value in record["metrics"].items():
        if key != metric:
            print(f"{key:<12} {value:.6g}")
    print("coefficients")
    for group, value in zip(groups, record["coefficients"], strict=True):
        print(f"  {group.index}  {group.label:<18} c={value:.4f}  ({group.channels} channels)")


def _save_plot(env, coefficients, path: str) -> None:
    task = env.task
    if not hasattr(task, "reconstruct"):
        _say(f"--plot: task {task.name} has no reconstructions to draw; skipped")
        return
    from prunegym.plots import save_reconstruction_grid

    env.reset()
    dense = task.reconstruct(env.model)
    env.step(coefficients)
    pruned = task.reconstruct(env.model)
    rows = {"original": task.eval_images, "dense": dense, "pruned": pruned}
    save_reconstruction_grid(path, rows, title=f"{task.name} at {env.target:.0%} target")
    _say(f"saved {path}")


TASK_SUMMARIES = {
    "mnist-ae": "MNIST autoencoder, metric psnr (dB, higher is better)",
    "toy": "tiny seeded MLP autoencoder, metric mse to the dense outputs (lower is better)",
}


def cmd_tasks(args: argparse.Namespace) -> int:
    for name in task_names():
        print(f"{name:<10} {TASK_SUMMARIES.get(name, '')}")
    return 0


def cmd_groups(args: argparse.Namespace) -> int:
    from prunegym.pruning.groups import format_group_table

    env = _make_env(args)
    print(format_group_table(env.groups, env.pruner.total_parameters))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    env = _make_env(args)
    values = [float(v) for v in args.coefficients.split(",")] if args.coefficients else []
    if len(values) == 1:
        values = values * len(env.groups)
    started = time.perf_counter()
    env.reset()
    _, _, _, _, info = env.step(np.array(values))
    record = _result_record(env, "manual", values, info, started)
    print(json.dumps(record, indent=2)) if args.json else _print_result(record, env.groups)
    return 0


def cmd_solve(args: argparse.Namespace) -> int:
    env = _make_env(args)
    started = time.perf_counter()
    env.reset(options={"target": args.target})
    coefficients = uniform_coefficients(env, args.target)
    _, _, _, _, info = env.step(coefficients)
    record = _result_record(env, "uniform", coefficients, info, started)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        _print_result(record, env.groups)
        if not record["feasible"]:
            print("no uniform allocation reaches the window target ± tolerance")
    if args.plot:
        _save_plot(env, coefficients, args.plot)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    if args.task != "mnist-ae":
        raise SystemExit(
            f"prunegym train: only 'mnist-ae' has a training recipe, not {args.task!r}"
        )
    from tqdm import tqdm

    from prunegym.tasks.train_autoencoder import RECIPE, train_autoencoder

    overrides = {
        k: v for k, v in {"epochs": args.epochs, "seed": args.seed}.items() if v is not None
    }
    bar = tqdm(total=overrides.get("epochs", RECIPE["epochs"]), desc="training", unit="epoch")

    def progress(epoch: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(train_mse=f"{loss:.5f}")

    metrics = train_autoencoder(args.out, data_root=args.data_root, progress=progress, **overrides)
    bar.close()
    print(
        f"saved {args.out}: test psnr {metrics['psnr']:.2f} dB, mse {metrics['mse']:.6f}, "
        f"{metrics['train_seconds']:.0f} s"
    )
    print(
        f"use it with: prunegym solve mnist-ae --checkpoint {args.out}  (or checkpoint= in Python)"
    )
    return 0


def _add_env_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", choices=task_names(), help="task name")
    parser.add_argument("--criterion", default="compensated", choices=CRITERIA)
    parser.add_argument("--compensation", default="mean", choices=COMPENSATIONS)
    parser.add_argument("--data-root", default=None, help="full MNIST in torchvision's layout")
    parser.add_argument("--checkpoint", default=None, help="checkpoint to load (mnist-ae)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prunegym", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("tasks", help="list the tasks").set_defaults(run=cmd_tasks)

    groups = commands.add_parser("groups", help="print the pruning groups (Table II)")
    _add_env_arguments(groups)
    groups.set_defaults(run=cmd_groups)

    evaluate = commands.add_parser("evaluate", help="evaluate given coefficients")
    _add_env_arguments(evaluate)
    evaluate.add_argument(
        "--coefficients", required=True, help="comma-separated c_i, or one value for every group"
    )
    evaluate.add_argument("--json", action="store_true", help="print JSON on stdout")
    evaluate.set_defaults(run=cmd_evaluate)

    solve = commands.add_parser("solve", help="find coefficients for a sparsity target")
    _add_env_arguments(solve)
    solve.add_argument("--target", type=float, default=0.2, help="sparsity target (0-1)")
    solve.add_argument("--tolerance", type=float, default=0.01, help="window half-width")
    solve.add_argument("--json", action="store_true", help="print JSON on stdout only")
    solve.add_argument("--plot", default=None, help="save a reconstruction grid PNG here")
    solve.set_defaults(run=cmd_solve)

    train = commands.add_parser("train", help="retrain a task's checkpoint from scratch")
    train.add_argument("task", choices=["mnist-ae"])
    train.add_argument("--out", required=True, help="checkpoint path to write")
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--data-root", default=None)
    train.set_defaults(run=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"prunegym: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
