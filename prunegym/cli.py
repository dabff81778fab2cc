"""The ``prunegym`` command line: tasks, groups, evaluate, solve, validate, export, train."""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from prunegym.pruning import COMPENSATIONS, CRITERIA
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


def _parse_option(text: str) -> tuple[str, object]:
    """``key=value`` with the value read as JSON when possible (numbers, lists, true/false)."""
    if "=" not in text:
        raise ValueError(f"--option must look like key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip().replace("-", "_"), json.loads(value)
    except json.JSONDecodeError:
        return key.strip().replace("-", "_"), value


def _print_result(result, groups) -> None:
    metric = result.metric_name
    print(f"task         {result.task}  (solver: {result.solver})")
    print(f"target       {result.target:.3f} ± {result.tolerance:.3f}")
    print(f"sparsity     {result.sparsity:.4f} exact")
    print(f"feasible     {result.feasible}" + (f"  ({result.message})" if result.message else ""))
    print(f"{metric:<12} {result.metric:.4f}  (dense {result.dense_metric:.4f})")
    for key, value in result.metrics.items():
        if key != metric:
            dense = result.dense_metrics.get(key, float("nan"))
            print(f"{key:<12} {value:.6g}  (dense {dense:.6g})")
    print(f"evaluations  {result.evaluations} in {result.wall_seconds:.2f} s")
    for key, value in result.details.items():
        if key != "trace":
            print(f"{key:<12} {value}")
    print("coefficients")
    for group, value in zip(groups, result.coefficients, strict=True):
        print(f"  {group.index}  {group.label:<18} c={value:.4f}  ({group.channels} channels)")


def _save_plot(env, agent, result, path: str) -> None:
    task = env.task
    if not hasattr(task, "reconstruct"):
        _say(f"--plot: task {task.name} has no reconstructions to draw; skipped")
        return
    from prunegym.plots import save_reconstruction_grid

    env.reset(options={"target": result.target})
    dense = task.reconstruct(env.model)
    if getattr(agent, "model", None) is not None and result.solver == "torch-pruning":
        pruned = task.reconstruct(agent.model)  # Torch-Pruning's own physically pruned model
    else:
        env.step(np.asarray(result.coefficients))
        pruned = task.reconstruct(env.model)
        env.reset()
    rows = {"original": task.eval_images, "dense": dense, result.solver: pruned}
    title = f"{task.name}, {result.solver} at {result.sparsity:.1%} sparsity"
    save_reconstruction_grid(path, rows, title=title)
    _say(f"saved {path}")


def _run_agent(args: argparse.Namespace, env, agent):
    from prunegym.agents import Budget

    budget = None
    if args.budget is not None or args.seconds is not None:
        budget = Budget(evaluations=args.budget, seconds=args.seconds)
    result = agent.run(env, budget)
    if args.json:
        print(result.to_json())
    else:
        _print_result(result, env.groups)
    if args.out:
        result.save(args.out)
        _say(f"saved {args.out}")
    if args.plot:
        _save_plot(env, agent, result, args.plot)
    return 0


TASK_SUMMARIES = {
    "mnist-ae": "MNIST autoencoder, metric psnr (dB, higher is better)",
    "toy": "tiny seeded MLP autoencoder, metric mse to the dense outputs (lower is better)",
    "tdmpc-pendulum": "TD-MPC agent on the pixel pendulum, metric episode return (higher)",
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
    from prunegym.agents import Fixed

    values = [float(v) for v in args.coefficients.split(",")]
    env = _make_env(args)
    return _run_agent(args, env, Fixed(values, progress=False))


def _check_window(args: argparse.Namespace) -> None:
    if not 0.0 < args.target < 0.95:
        raise ValueError(f"--target must lie in (0, 0.95), got {args.target}")
    if not 0.0 < args.tolerance < 1.0:
        raise ValueError(f"--tolerance must lie in (0, 1), got {args.tolerance}")


def cmd_solve(args: argparse.Namespace) -> int:
    from prunegym.agents import make_agent

    _check_window(args)
    options = dict(_parse_option(text) for text in args.option)
    agent = make_agent(args.solver, progress=not args.no_progress, **options)
    env = _make_env(args)
    return _run_agent(args, env, agent)


def _add_env_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", choices=task_names(), help="task name")
    parser.add_argument("--criterion", default="compensated", choices=CRITERIA)
    parser.add_argument("--compensation", default="mean", choices=COMPENSATIONS)
    parser.add_argument("--data-root", default=None, help="full MNIST in torchvision's layout")
    parser.add_argument("--checkpoint", default=None, help="checkpoint to load (mnist-ae)")


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result JSON on stdout only")
    parser.add_argument("--out", default=None, help="also save the result JSON here")
    parser.add_argument("--plot", default=None, help="save a reconstruction grid PNG here")


def build_parser() -> argparse.ArgumentParser:
    from prunegym.agents import agent_names
    from prunegym.cli_results import cmd_export, cmd_validate
    from prunegym.cli_train import cmd_train, cmd_train_tdmpc

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
    evaluate.add_argument("--target", type=float, default=0.2, help="sparsity target (0-1)")
    evaluate.add_argument("--tolerance", type=float, default=0.01, help="window half-width")
    _add_output_arguments(evaluate)
    evaluate.set_defaults(run=cmd_evaluate, budget=None, seconds=None)

    solve = commands.add_parser("solve", help="find coefficients for a sparsity target")
    _add_env_arguments(solve)
    solve.add_argument("--target", type=float, default=0.2, help="sparsity target (0-1)")
    solve.add_argument("--tolerance", type=float, default=0.01, help="window half-width")
    solve.add_argument(
        "--solver", default="fd-momentum", choices=agent_names(), help="the solver to run"
    )
    solve.add_argument("--budget", type=int, default=None, help="most evaluations")
    solve.add_argument("--seconds", type=float, default=None, help="most wall-clock seconds")
    solve.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="solver option, repeatable (e.g. --option points=8 --option momentum=0.8)",
    )
    solve.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_output_arguments(solve)
    solve.set_defaults(run=cmd_solve)

    train = commands.add_parser("train", help="retrain a task's checkpoint from scratch")
    train.add_argument("task", choices=["mnist-ae"])
    train.add_argument("--out", required=True, help="checkpoint path to write")
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--data-root", default=None)
    train.set_defaults(run=cmd_train)

    validate = commands.add_parser(
        "validate", help="re-evaluate a result file's coefficients and compare"
    )
    validate.add_argument("result", help="a result JSON written by solve --out or --json")
    validate.add_argument("--rtol", type=float, default=1e-4, help="relative metric tolerance")
    validate.add_argument("--atol", type=float, default=1e-9, help="absolute metric tolerance")
    validate.set_defaults(run=cmd_validate)

    export = commands.add_parser(
        "export", help="save a result's physically pruned model (torch.export .pt2)"
    )
    export.add_argument("result", help="a result JSON written by solve --out or --json")
    export.add_argument("--out", required=True, help="the .pt2 file to write")
    export.set_defaults(run=cmd_export)

    tdmpc = commands.add_parser("train-tdmpc", help="train the TD-MPC pixel-pendulum agent")
    tdmpc.add_argument("--steps", type=int, default=30_000, help="environment steps")
    tdmpc.add_argument("--seed", type=int, default=0)
    tdmpc.add_argument("--out", default="runs/tdmpc", help="run directory")
    tdmpc.add_argument("--resume", action="store_true", help="continue the run in --out")
    tdmpc.add_argument("--eval-every", type=int, default=2000, help="steps between evaluations")
    tdmpc.add_argument(
        "--checkpoint-every", type=int, default=1000, help="steps between resumable checkpoints"
    )
    tdmpc.set_defaults(run=cmd_train_tdmpc)
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
