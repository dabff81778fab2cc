"""``prunegym bench``: run a grid of tasks × solvers × targets × seeds and report it."""

from __future__ import annotations

import argparse
import shlex

from prunegym.agents.specs import split_solver_list
from prunegym.bench import BenchSpec, run_bench, write_reports
from prunegym.cli.common import (
    add_env_arguments,
    add_option,
    check_solver_settings,
    check_writable,
    parse_option,
    say,
    task_options,
)


def _split(text: str, what: str, split=None) -> list[str]:
    items = split(text) if split else [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError(f"--{what} needs a comma-separated list, got {text!r}")
    return items


def _targets(text: str) -> list[float]:
    try:
        return [float(item) for item in _split(text, "targets")]
    except ValueError as error:
        raise ValueError(f"--targets must be comma-separated fractions, got {text!r}") from error


def _options(texts: list[str]) -> dict[str, dict]:
    """``key=value`` for every solver, ``solver:key=value`` for one."""
    options: dict[str, dict] = {}
    for text in texts:
        head, _, rest = text.partition("=")
        solver, _, key = head.rpartition(":")
        add_option(
            options.setdefault(solver or "*", {}), *parse_option(f"{key}={rest}" if _ else text)
        )
    return options


def cmd_bench(args: argparse.Namespace) -> int:

    tasks = _split(args.tasks, "tasks")
    solvers = _split(args.solvers, "solvers", split_solver_list)
    options = _options(args.option)
    for solver in sorted({*solvers, *options} - {"*"}):  # options may name an added baseline
        mine = {**options.get("*", {}), **options.get(solver, {})}
        check_solver_settings(solver, mine, seed_flag="--seeds", solver_flag="--solvers")
    extra = task_options(args)
    spec = BenchSpec(
        tasks=tasks,
        solvers=solvers,
        targets=_targets(args.targets),
        seeds=args.seeds,
        tolerance=args.tolerance,
        criterion=args.criterion,
        compensation=args.compensation,
        granularity=args.granularity,
        budget=args.budget,
        seconds=args.seconds,
        options=options,
        task_options={task: dict(extra) for task in tasks} if extra else {},
        device=args.device,
        precision=args.precision,
        bn_recalibration=args.bn_recalibration,
        lsq_ridge=args.lsq_ridge,
        baselines=not args.no_baselines,
    )
    check_writable(args.out, "--out", folder=True)
    counts = run_bench(spec, args.out, args.backend, args.address, progress=not args.no_progress)
    say(f"{counts['ran']} cells run, {counts['skipped']} already done (of {counts['cells']})")
    command = "prunegym " + " ".join(shlex.quote(a) for a in args.argv)
    written = write_reports(spec, args.out, command)
    print(written["report"].read_text())
    for path in written.values():
        say(f"saved {path}")
    return 0


def add_bench_parser(commands) -> None:
    bench = commands.add_parser(
        "bench", help="benchmark solvers: tasks × solvers × targets × seeds, with resume"
    )
    bench.add_argument("--tasks", required=True, help="comma-separated task names")
    bench.add_argument(
        "--solvers",
        required=True,
        help="comma-separated solvers, each with its options if any "
        "(random,learned-policy:refine=50,search=local)",
    )
    bench.add_argument(
        "--targets", default="0.1,0.2,0.3,0.5", help="comma-separated sparsity targets"
    )
    bench.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per cell")
    bench.add_argument("--tolerance", type=float, default=0.01, help="window half-width > 0")
    add_env_arguments(bench, task=False)
    bench.add_argument("--budget", type=int, default=None, help="most evaluations per cell")
    bench.add_argument("--seconds", type=float, default=None, help="most seconds per cell")
    bench.add_argument(
        "--option", action="append", default=[], metavar="[SOLVER:]KEY=VALUE",
        help="solver option for every solver, or for one (e.g. --option random:samples=100)",
    )  # fmt: skip
    bench.add_argument(
        "--no-baselines", action="store_true",
        help="do not add Torch-Pruning with each of its criteria (torch-pruning-<criterion>)",
    )  # fmt: skip
    bench.add_argument("--out", required=True, metavar="DIR", help="benchmark directory")
    bench.add_argument(
        "--backend", default="sequential", choices=["sequential", "ray"],
        help="run cells here one by one (default) or as Ray tasks (pip install prunegym[ray])",
    )  # fmt: skip
    bench.add_argument(
        "--address", default=None, help="Ray cluster address; default: start Ray locally"
    )
    bench.add_argument("--no-progress", action="store_true", help="no progress bar")
    bench.set_defaults(run=cmd_bench)
