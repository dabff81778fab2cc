"""``prunegym validate`` and ``prunegym export``: re-check and export result files."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from prunegym.cli import _say
from prunegym.tasks import make_task


def _env_for_result(result):
    from prunegym.env import PruneEnv

    if result.solver == "torch-pruning":
        raise ValueError(
            "torch-pruning results chose channels by Torch-Pruning's own ranking; their "
            "coefficients cannot be replayed through the environment's masks"
        )
    _say(f"building {result.task} ({result.criterion} ranking, {result.compensation})...")
    return PruneEnv(
        make_task(result.task),
        target=result.target,
        tolerance=result.tolerance,
        criterion=result.criterion,
        compensation=result.compensation,
    )


def _load_result(path: str):
    from prunegym.agents import Result

    try:
        return Result.load(path)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"result file not found: {path}") from error
    except (json.JSONDecodeError, TypeError, ValueError) as error:
        raise ValueError(f"{path} is not a prunegym result: {error}") from error


def cmd_validate(args: argparse.Namespace) -> int:
    result = _load_result(args.result)
    env = _env_for_result(result)
    problems = []
    if not np.isclose(env.dense_metric, result.dense_metric, rtol=args.rtol, atol=args.atol):
        problems.append(
            f"dense {result.metric_name} is {env.dense_metric:.6g}, the result recorded "
            f"{result.dense_metric:.6g}: a different checkpoint or data set"
        )
    env.reset()
    _, _, _, _, info = env.step(np.asarray(result.coefficients))
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
    import os

    from prunegym.pruning.export import model_cost, save_exported

    result = _load_result(args.result)
    env = _env_for_result(result)
    pruned = env.export(np.asarray(result.coefficients))
    inputs = env.task.example_inputs
    path = save_exported(pruned, inputs, args.out)
    env.reset()
    dense_macs, dense_parameters = model_cost(env.model, inputs)
    macs, parameters = model_cost(pruned, inputs)
    print(f"exported {result.solver} result on {result.task} to {path}")
    print(f"parameters  {dense_parameters:,} dense -> {parameters:,} exported")
    print(f"MACs        {dense_macs:,} dense -> {macs:,} exported (per sample)")
    print(f"file size   {os.path.getsize(path):,} bytes")
    print("load it with: torch.export.load(PATH).module()")
    return 0
