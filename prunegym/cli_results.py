"""``prunegym validate`` and ``prunegym export``: re-check and export result files."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from prunegym.cli_common import say


def load_result(path: str):
    """Read a result file; missing or malformed files raise one-line errors."""
    from prunegym.agents import Result

    try:
        return Result.load(path)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"result file not found: {path}") from error
    except IsADirectoryError as error:
        raise ValueError(f"{path} is a directory; give its result.json") from error
    except (json.JSONDecodeError, TypeError, ValueError) as error:
        raise ValueError(f"{path} is not a prunegym result: {error}") from error


def _environment(result):
    from prunegym.agents import environment_for

    say(f"building {result.task} ({result.criterion} ranking, {result.compensation})...")
    return environment_for(result)


def _replay(result, env) -> dict:
    """The metric, sparsity and feasibility of ``result``'s coefficients, measured again."""
    if result.solver == "torch-pruning":
        from prunegym.agents.replay import rerun_solver

        say("torch-pruning chose its own channels: re-running it with the recorded settings")
        _, again = rerun_solver(result, env)
        return {"metric": again.metric, "sparsity": again.sparsity, "feasible": again.feasible}
    env.reset()
    _, _, _, _, info = env.step(np.asarray(result.coefficients))
    return info


def cmd_validate(args: argparse.Namespace) -> int:
    if args.rtol < 0 or args.atol < 0:
        raise ValueError(f"--rtol and --atol must be >= 0, got {args.rtol} and {args.atol}")
    result = load_result(args.result)
    env = _environment(result)
    problems = []
    if not np.isclose(env.dense_metric, result.dense_metric, rtol=args.rtol, atol=args.atol):
        problems.append(
            f"dense {result.metric_name} is {env.dense_metric:.6g}, the result recorded "
            f"{result.dense_metric:.6g}: a different data set or library version"
        )
    info = _replay(result, env)
    if not np.isclose(info["metric"], result.metric, rtol=args.rtol, atol=args.atol):
        problems.append(
            f"{result.metric_name} is {info['metric']:.6g}, the result recorded {result.metric:.6g}"
        )
    if abs(info["sparsity"] - result.sparsity) > 1e-12:
        problems.append(
            f"sparsity is {info['sparsity']:.6f}, the result recorded {result.sparsity:.6f}"
        )
    if info["feasible"] != result.feasible and result.message == "":
        problems.append(f"feasible is {info['feasible']}, the result recorded {result.feasible}")
    if problems:
        print(f"prunegym: validation failed for {args.result}:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(
        f"validated {args.result}: {result.metric_name} {info['metric']:.6g} "
        f"(recorded {result.metric:.6g}), sparsity {info['sparsity']:.6f}"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from prunegym.artifacts import export_summary
    from prunegym.pruning.export import save_exported

    result = load_result(args.result)
    env = _environment(result)
    if result.solver == "torch-pruning":
        from prunegym.agents.replay import rerun_solver

        pruned = rerun_solver(result, env)[0].pruned_model
    else:
        pruned = env.export(np.asarray(result.coefficients))
    inputs = env.task.example_inputs
    path = save_exported(pruned, inputs, args.out)
    env.reset()
    print(f"exported {result.solver} result on {result.task} to {path}")
    for line in export_summary(env.model, pruned, inputs, path):
        print(line)
    print("load it with: torch.export.load(PATH).module()")
    return 0
