"""The ``prunegym`` command line: tasks, groups, evaluate, solve, bench, validate, export,
train, train-tdmpc. Results go to stdout, progress to stderr; bad arguments give one line
``prunegym: error: ...`` and exit status 2."""

from __future__ import annotations

import argparse
import sys
import warnings

from prunegym.agents import Budget, Fixed, agent_names, make_agent
from prunegym.agents.tensorboard import check_tensorboard
from prunegym.cli.bench import add_bench_parser
from prunegym.cli.common import (
    ArgumentParser,
    add_env_arguments,
    add_option,
    check_solver_settings,
    check_window,
    check_writable,
    make_env,
    parse_option,
    say,
)
from prunegym.cli.results import cmd_export, cmd_validate
from prunegym.cli.train import add_train_parsers
from prunegym.envs.prune_env import PruneEnv
from prunegym.pruning.channel.groups import format_group_table
from prunegym.results.artifacts import save_solve_outputs
from prunegym.tasks import make_task, task_names
from prunegym.tasks.intervals import describe_difference


def print_result(result) -> None:
    """The summary table of a result."""
    metric = result.metric_name
    print(f"task         {result.task}  (solver: {result.solver}, seed {result.seed})")
    print(f"target       {result.target:.3f} ± {result.tolerance:.3f}")
    print(f"sparsity     {result.sparsity:.4f} exact, {result.sparsity_estimate:.4f} estimate")
    print(f"feasible     {result.feasible}" + (f"  ({result.message})" if result.message else ""))
    where = "  on the search episodes" if result.test_metrics else ""
    value, dense = _figure(result.metric), _figure(result.dense_metric)
    print(f"{metric:<12} {value}  (dense {dense}){where}")
    others = [key for key in result.metrics if key != metric]
    width = max([12, *(len(key) for key in others)])
    for key in others:
        dense = result.dense_metrics.get(key, float("nan"))
        print(f"{key:<{width}} {result.metrics[key]:.6g}  (dense {dense:.6g})")
    if result.test_metrics:
        for line in test_lines(result):
            print(line)
    if "macs" in result.costs:
        macs, dense = result.costs["macs"], result.costs["macs_dense"]
        share = macs / dense if dense else float("nan")
        print(f"MACs         {macs:,} of {dense:,} per sample ({share:.1%} kept; "
              "convolutions and linear layers)")  # fmt: skip
    print(f"evaluations  {result.evaluations} in {result.wall_seconds:.2f} s"
          f" ({result.cache_hits} of {result.cache_lookups} requests from the cache)")  # fmt: skip
    for key, value in result.details.items():
        if key != "trace":
            print(f"{key:<12} {_shown(value)}")
    print("coefficients")
    for label, value in zip(result.groups, result.coefficients, strict=True):
        print(f"  {label:<22} c={value:.4f}")


def _shown(value) -> str:
    """A solver's detail on one line: floats to four significant digits, dicts as
    ``{key: value, ...}``, lists as ``[...]``."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_shown(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_shown(item) for item in value) + "]"
    return str(value)


def _figure(value: float) -> str:
    """Four decimals, or four significant digits for a value too small to show in them
    (the toy task's mse)."""
    return f"{value:.4f}" if value == 0 or abs(value) >= 0.01 else f"{value:.4g}"


def test_lines(result) -> list[str]:
    """The held-out test episodes' lines of a result: its mean and 95 % interval, the dense
    model's, and the paired difference (stated only where its interval excludes zero)."""

    name, test, dense = result.metric_name, result.test_metrics, result.dense_test_metrics
    lines = [
        f"test {name:<7} {test[name]:.4f} ± {test[name + '_ci95']:.4f}  (dense "
        f"{dense[name]:.4f} ± {dense[name + '_ci95']:.4f}; {int(test['episodes'])} held-out "
        "episodes, 95 % intervals)",
        "vs dense     "
        + describe_difference(test[f"{name}_vs_dense"], test[f"{name}_vs_dense_ci95"], ".4g")
        + "  (paired, same test episodes)",
    ]
    if "normalized" in test:
        lines.append(
            f"test score   {test['normalized']:.4f} ± {test['normalized_ci95']:.4f}  "
            "(random policy 0, dense 1)"
        )
    return lines


def _run_agent(args: argparse.Namespace, env, agent) -> int:

    budget = None
    if args.budget is not None or args.seconds is not None:
        budget = Budget(evaluations=args.budget, seconds=args.seconds)
    result = agent.run(env, budget, tensorboard=getattr(args, "tensorboard", None))
    if args.out:  # first: the export adds its measured latency to the result
        say(f"writing {args.out}/ (result, pictures, exported model)...")
        written, summary = save_solve_outputs(env, result, args.out, agent.pruned_model)
        for line in summary:
            say(line)
        for path in written.values():
            say(f"saved {path}")
    if args.json:
        print(result.to_json())
    else:
        print_result(result)
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:

    rows = []
    for name in task_names():
        say(f"loading {name}...")
        env = PruneEnv(make_task(name))
        summary = (env.task.__doc__ or "").strip().splitlines()[0]
        parameters = env.pruner.total_parameters
        rows.append((name, len(env.groups), env.task.metric, env.dense_metric, parameters, summary))
    print(f"{'task':<18} {'groups':>6} {'dense metric':>22} {'parameters':>11}  description")
    for name, groups, metric, dense, parameters, doc in rows:
        print(f"{name:<18} {groups:>6} {metric:>10} {dense:>11.4g} {parameters:>11,}  {doc}")
    return 0


def cmd_groups(args: argparse.Namespace) -> int:

    env = make_env(args)
    print(format_group_table(env.groups, env.pruner.total_parameters))
    return 0


def _check_seed_and_out(args: argparse.Namespace) -> None:
    """``--seed`` and ``--out`` of ``solve`` and ``evaluate``, before anything is built."""
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    if args.out:
        check_writable(args.out, "--out", folder=True)


def cmd_evaluate(args: argparse.Namespace) -> int:

    try:
        values = [float(v) for v in args.coefficients.split(",")]
    except ValueError as error:
        raise ValueError(f"--coefficients must be comma-separated numbers: {error}") from error
    _check_seed_and_out(args)
    env = make_env(args)
    return _run_agent(args, env, Fixed(values, progress=False, seed=args.seed))


def cmd_solve(args: argparse.Namespace) -> int:

    check_window(args.target, args.tolerance)
    options: dict = {}
    for text in args.option:
        add_option(options, *parse_option(text))
    check_solver_settings(args.solver, options)
    _check_seed_and_out(args)
    if args.tensorboard is not None:  # before the task is built, not after
        check_tensorboard(args.tensorboard)
    agent = make_agent(args.solver, progress=not args.no_progress, seed=args.seed, **options)
    env = make_env(args)
    return _run_agent(args, env, agent)


def _add_window_and_outputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", type=float, default=0.2, help="sparsity target in (0, 0.95)")
    parser.add_argument("--tolerance", type=float, default=0.01, help="window half-width > 0")
    parser.add_argument("--seed", type=int, default=0, help="solver seed (recorded)")
    parser.add_argument("--json", action="store_true", help="print the result JSON on stdout only")
    parser.add_argument(
        "--out", default=None, metavar="DIR",
        help="write result.json, coefficients.png, picture.png and model.pt2 into DIR",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:

    parser = ArgumentParser(prog="prunegym", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tasks = commands.add_parser("tasks", help="list the tasks: groups, dense metric, parameters")
    tasks.set_defaults(run=cmd_tasks)

    groups = commands.add_parser("groups", help="print the pruning groups (Table II)")
    add_env_arguments(groups)
    groups.set_defaults(run=cmd_groups)

    evaluate = commands.add_parser("evaluate", help="evaluate given coefficients")
    add_env_arguments(evaluate)
    evaluate.add_argument(
        "--coefficients", required=True, help="comma-separated c_i, or one value for every group"
    )
    _add_window_and_outputs(evaluate)
    evaluate.set_defaults(run=cmd_evaluate, budget=None, seconds=None)

    solve = commands.add_parser("solve", help="find coefficients for a sparsity target")
    add_env_arguments(solve)
    solve.add_argument(
        "--solver", default="fd-momentum", metavar="SOLVER",
        help=f"{', '.join(agent_names())}, a registered or installed solver, or "
        "module:attribute naming your own Agent class; :key=value[,key=value] appends "
        "options, e.g. learned-policy:refine=50 (default: fd-momentum)",
    )  # fmt: skip
    _add_window_and_outputs(solve)
    solve.add_argument("--budget", type=int, default=None, help="most evaluations")
    solve.add_argument(
        "--seconds", type=float, default=None,
        help="most wall-clock seconds (the first evaluation or batch always runs)",
    )  # fmt: skip
    solve.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE",
        help="solver option, repeatable (e.g. --option points=8 --option momentum=0.8)",
    )  # fmt: skip
    solve.add_argument("--no-progress", action="store_true", help="no progress bar")
    solve.add_argument(
        "--tensorboard", default=None, metavar="DIR",
        help="log reward, metric, sparsity and the best feasible metric so far per evaluation "
        "to TensorBoard",
    )  # fmt: skip
    solve.set_defaults(run=cmd_solve)

    add_bench_parser(commands)

    validate = commands.add_parser(
        "validate", help="re-evaluate a result file's coefficients and compare"
    )
    validate.add_argument("result", help="a result JSON written by solve --out or --json")
    validate.add_argument(
        "--rtol", type=float, default=1e-4,
        help="relative metric tolerance (closed-loop tasks: within their 95 %% intervals instead)",
    )  # fmt: skip
    validate.add_argument("--atol", type=float, default=1e-9, help="absolute metric tolerance")
    validate.add_argument(
        "--device", default="cpu", metavar="DEVICE",
        help="where to replay: cpu (default), cuda, cuda:N or auto; any device works",
    )  # fmt: skip
    validate.set_defaults(run=cmd_validate)

    export = commands.add_parser(
        "export", help="save a result's physically pruned model (torch.export .pt2)"
    )
    export.add_argument("result", help="a result JSON written by solve --out or --json")
    export.add_argument("--out", required=True, help="the .pt2 file to write")
    export.set_defaults(run=cmd_export)

    add_train_parsers(commands)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """prunegym's own warnings as one line on stderr; others as Python shows them."""
    if category.__module__.startswith("prunegym"):
        print(f"prunegym: warning: {message}", file=sys.stderr)
    else:
        _PYTHON_SHOW_WARNING(message, category, filename, lineno, file, line)


_PYTHON_SHOW_WARNING = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    warnings.showwarning = _show_warning
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command as typed, for reports
    try:
        return args.run(args)
    except (
        ValueError,
        FileNotFoundError,
        IsADirectoryError,
        PermissionError,
        NotImplementedError,
    ) as error:  # bad input, and a plugin task without what the command needs
        if isinstance(error, NotImplementedError) and not str(error):
            raise  # a plugin's unimplemented method: the traceback says which
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"prunegym: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("prunegym: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
