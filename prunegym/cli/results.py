"""``prunegym validate`` and ``prunegym export``: re-check and export result files."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from prunegym.agents import Result, prunes_its_own_model
from prunegym.agents.session import meets_floor
from prunegym.cli.common import check_writable, say
from prunegym.pruning.export import save_exported
from prunegym.results.artifacts import export_summary
from prunegym.results.replay import OtherWeights, environment_for, rerun_solver
from prunegym.tasks.devices import resolve_device


def load_result(path: str):
    """Read a result file; missing or malformed files raise one-line errors."""

    try:
        return Result.load(path)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"result file not found: {path}") from error
    except IsADirectoryError as error:
        raise ValueError(f"{path} is a directory; give its result.json") from error
    except (json.JSONDecodeError, TypeError, ValueError) as error:
        raise ValueError(f"{path} is not a prunegym result: {error}") from error


def _environment(result, args: argparse.Namespace):

    say(f"building {result.task} ({result.criterion} ranking, {result.compensation})...")
    return environment_for(result, device=getattr(args, "device", None))


def _replay(result, env) -> dict:
    """The metrics, sparsity and feasibility of ``result``'s coefficients, measured again, and
    for tasks with held-out test episodes the test metrics of the result and the dense model."""
    if prunes_its_own_model(result.solver):
        say(f"{result.solver} chose its own channels: re-running it with the recorded settings")
        _, again = rerun_solver(result, env)
        return {
            **again.metrics, "metric": again.metric, "sparsity": again.sparsity,
            "feasible": again.feasible, "test": again.test_metrics,
            "dense_test": again.dense_test_metrics, "coefficients": again.coefficients,
        }  # fmt: skip
    env.reset()
    _, _, _, _, info = env.step(np.asarray(result.coefficients))
    if result.test_metrics:
        say(f"scoring on {int(result.test_metrics['episodes'])} held-out test episodes...")
        info["test"] = env.test_evaluation(np.asarray(result.coefficients))[0]
        info["dense_test"] = env.test_evaluation()[0]
    return info


def _within_intervals(label, name, replayed, recorded, replayed_ci, recorded_ci) -> list[str]:
    """A problem line unless ``|replayed − recorded| ≤ recorded_ci + replayed_ci``."""
    if abs(replayed - recorded) <= recorded_ci + replayed_ci:
        return []
    return [
        f"{label} {name} is {replayed:.6g} ± {replayed_ci:.3g}, the result recorded "
        f"{recorded:.6g} ± {recorded_ci:.3g}: further apart than the two 95 % intervals"
    ]


def _statistical_problems(result, env, info) -> list[str]:
    """Closed-loop tasks: each replayed mean must lie within the recorded 95 % interval plus
    the replay's own (last-bit differences between CPUs change trajectories)."""
    name, interval = result.metric_name, f"{result.metric_name}_ci95"
    problems = _within_intervals(
        "dense", name, env.dense_metric, result.dense_metric,
        env.dense_metrics.get(interval, 0.0), result.dense_metrics.get(interval, 0.0),
    )  # fmt: skip
    problems += _within_intervals(
        "search", name, info["metric"], result.metric,
        info.get(interval, 0.0), result.metrics.get(interval, 0.0),
    )  # fmt: skip
    for label, replayed, recorded in (
        ("test", info["test"], result.test_metrics),
        ("dense test", info["dense_test"], result.dense_test_metrics),
    ):
        problems += _within_intervals(
            label, name, replayed[name], recorded[name], replayed[interval], recorded[interval]
        )
    return problems


def _exact_problems(result, env, info, rtol: float, atol: float) -> list[str]:
    """Feed-forward tasks: the metrics must agree to ``rtol``/``atol`` (across the CPU kernels
    of ``benchmarks/cpu_kernels.py`` they agree to 1e-7)."""
    problems = []
    if not np.isclose(env.dense_metric, result.dense_metric, rtol=rtol, atol=atol):
        problems.append(
            f"dense {result.metric_name} is {env.dense_metric:.6g}, the result recorded "
            f"{result.dense_metric:.6g}: a different data set or library version"
        )
    if not np.isclose(info["metric"], result.metric, rtol=rtol, atol=atol, equal_nan=True):
        problems.append(
            f"{result.metric_name} is {info['metric']:.6g}, the result recorded {result.metric:.6g}"
        )
    for name, recorded in result.metrics.items():
        if name not in info:
            problems.append(f"the result records a metric {name!r} the task does not compute")
        elif name == result.metric_name and recorded == result.metric:
            continue  # compared above
        elif not np.isclose(info[name], recorded, rtol=rtol, atol=atol, equal_nan=True):
            problems.append(f"{name} is {info[name]:.6g}, the result recorded {recorded:.6g}")
    return problems


def _recorded_problems(result, env, info) -> list[str]:
    """What every result must match whatever its task: the metric's name, the sparsity, the
    feasibility (the window, a usable metric and, on deterministic tasks, the solver's
    ``metric_floor``) and, for a solver that chose its own channels on the same kind of device,
    the coefficients its re-run chose."""
    core, problems = env.unwrapped, []
    if result.metric_name != core.task.metric:
        problems.append(
            f"metric_name is {core.task.metric!r}, the result recorded {result.metric_name!r}"
        )
    if abs(info["sparsity"] - result.sparsity) > 1e-12:
        problems.append(
            f"sparsity is {info['sparsity']:.6f}, the result recorded {result.sparsity:.6f}"
        )
    floor = None if result.test_metrics else result.solver_settings.get("metric_floor")
    sign = 1.0 if core.task.higher_is_better else -1.0
    feasible = bool(info["feasible"]) and meets_floor(info["metric"], sign, floor)
    if feasible != result.feasible:
        problems.append(f"feasible is {feasible}, the result recorded {result.feasible}")
    same_device = torch.device(result.device or "cpu").type == torch.device(env.device).type
    chosen = info.get("coefficients")
    if chosen is not None and same_device and not np.allclose(chosen, result.coefficients):
        problems.append("the solver's re-run chose other coefficients than the result recorded")
    return problems


def cmd_validate(args: argparse.Namespace) -> int:

    if not (args.rtol >= 0 and args.atol >= 0):  # NaN fails too
        raise ValueError(f"--rtol and --atol must be >= 0, got {args.rtol} and {args.atol}")
    resolve_device(args.device)  # before anything loads
    result = load_result(args.result)
    try:
        env = _environment(result, args)
    except OtherWeights as error:
        return _failed(args.result, [str(error)])
    info = _replay(result, env)
    if result.test_metrics:
        problems = _statistical_problems(result, env, info)
    else:
        problems = _exact_problems(result, env, info, args.rtol, args.atol)
    problems += _recorded_problems(result, env, info)
    if problems:
        return _failed(args.result, problems)
    print(
        f"validated {args.result}: {result.metric_name} {info['metric']:.6g} "
        f"(recorded {result.metric:.6g}), sparsity {info['sparsity']:.6f}; found on "
        f"{result.device or 'cpu'}, replayed on {env.device}"
    )
    if result.test_metrics:
        name, test = result.metric_name, info["test"]
        print(
            f"  test episodes: {name} {test[name]:.6g} ± {test[name + '_ci95']:.3g} (recorded "
            f"{result.test_metrics[name]:.6g} ± {result.test_metrics[name + '_ci95']:.3g}); "
            "checked within the 95 % intervals"
        )
    return 0


def _failed(path: str, problems: list[str]) -> int:
    print(f"prunegym: validation failed for {path}:", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1


def cmd_export(args: argparse.Namespace) -> int:

    check_writable(args.out, "--out")
    result = load_result(args.result)
    env = _environment(result, args)
    if prunes_its_own_model(result.solver):
        pruned = rerun_solver(result, env)[0].pruned_model
    else:
        pruned = env.export(np.asarray(result.coefficients))
    path = save_exported(pruned, env.task.example_inputs, args.out)
    env.reset()
    print(f"exported {result.solver} result on {result.task} to {path}")
    for line in export_summary(env, pruned, path)[0]:
        print(line)
    print("load it with: torch.export.load(PATH).module()")
    return 0
