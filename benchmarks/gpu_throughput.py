"""Throughput on the CPU and on a device, side by side, measured in one run on one machine.

    python benchmarks/gpu_throughput.py [--device cuda] [--quick] [--tasks mnist-ae ...]
                                        [--precision fp32] [--json gpu_throughput.json]

For each task and each side (``cpu`` and ``--device``; only the CPU when ``--device cpu``):

- ``forward``: one dense forward of the evaluation data (TD-MPC: one dense evaluation, i.e. its
  8 search episodes of 100 decisions);
- ``step``: ``env.step`` of alternating random coefficients (cache off), and its ratio to the
  forward;
- candidates per second of ``env.evaluate_batch`` at K = 1, 16, 128, 512 and 4,096 distinct
  random candidates (cache off; a K is skipped when the previous rate says it would take over
  ``--max-seconds``, or when it runs out of memory);
- wall times of grid search (n = 10 over the groups, for tasks of at most 6 groups; the full
  grid without pre-filter on a GPU, the pre-filtered survivors on both sides), FD momentum and
  random search (512 samples), all at a 20 % target.

``--quick`` measures the MNIST autoencoder and the MLP classifier at K ≤ 128 with the
pre-filtered grid only (under a minute on a 2-core CPU; a CI test runs it with ``--device
cpu``). Results go to the printout and to a JSON file. The device side defaults to CUDA when
present.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from prunegym.agents import make_agent
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks import make_task
from prunegym.tasks.capabilities import OutputEvaluation
from prunegym.tasks.devices import device_name, resolve_device

TASKS = ["mnist-ae", "mnist-classifier", "mnist-convnet", "diffusion-sorption", "tdmpc-pendulum"]
QUICK_TASKS = ["mnist-ae", "mnist-classifier"]
SIZES = [1, 16, 128, 512, 4096]
QUICK_SIZES = [1, 16, 128]


def timed(function, device: torch.device, repeats: int = 5) -> float:
    """Median seconds of ``function()`` (after one warm-up call), synchronising the device."""

    def once() -> float:
        started = time.perf_counter()
        function()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - started

    once()
    return statistics.median(once() for _ in range(repeats))


def dense_forward(env: PruneEnv):
    """One dense forward of the evaluation data (or the dense evaluation of an episode task)."""
    task, model = env.task, env.evaluator.model
    env.pruner.restore()
    if isinstance(task, OutputEvaluation):
        return lambda: task.forward(model, task.evaluation_batch)
    return lambda: task.evaluate(model)


def candidate_rates(env, sizes, max_seconds, rng) -> dict[str, float | str]:
    """Candidates per second of ``evaluate_batch`` at each K (cache off)."""
    rates: dict[str, float | str] = {}
    rate = None
    for k in sizes:
        if rate is not None and k / rate > max_seconds:
            rates[str(k)] = f"skipped (over {max_seconds:g} s)"
            continue
        rows = rng.uniform(0.0, 0.6, (k, len(env.groups)))
        try:
            seconds = timed(lambda rows=rows: env.evaluate_batch(rows), env.device, repeats=1)
        except torch.cuda.OutOfMemoryError:
            rates[str(k)] = "out of memory"
            torch.cuda.empty_cache()
            break
        rate = k / seconds
        rates[str(k)] = rate
    return rates


def solver_times(env: PruneEnv, full_grid: bool) -> dict[str, dict[str, float]]:
    """Wall seconds, evaluations and metric of the solvers at a 20 % target."""
    runs = {
        "fd-momentum": ("fd-momentum", {}),
        "random (512)": ("random", {"samples": 512}),
    }
    if len(env.groups) <= 6:  # 10^m grid points, enumerated for the pre-filter
        runs["grid (pre-filtered)"] = ("grid", {"points": 10, "batch": 4096})
    if full_grid:
        runs["grid (full, no pre-filter)"] = ("grid", {"points": 10, "window": 0.99, "batch": 4096})
    found = {}
    for label, (name, options) in runs.items():
        env.reset(seed=0, options={"target": 0.2})
        agent = make_agent(name, progress=False, seed=0, **options)
        started = time.perf_counter()
        result = agent.run(env, None)
        found[label] = {
            "seconds": time.perf_counter() - started,
            "evaluations": result.evaluations,
            "metric": result.metric,
        }
    return found


def measure(task_name: str, device: torch.device, args, rng) -> dict:
    """Every figure of one task on one side."""
    options = {"episode_engine": "torch+table"} if task_name == "tdmpc-pendulum" else {}
    if task_name == "tdmpc-pendulum" and device.type == "cpu":
        options = {}  # the CPU default: numpy lockstep episodes
    task = make_task(task_name, device=device, **options)
    env = PruneEnv(task, cache=False, precision=args.precision, batching=args.batching)
    forward = timed(dense_forward(env), device)
    pair = [rng.uniform(0.0, 0.6, len(env.groups)) for _ in range(2)]
    turn = iter(range(10**9))
    step = timed(lambda: env.step(pair[next(turn) % 2]), device)
    sizes = QUICK_SIZES if args.quick else SIZES
    rates = candidate_rates(env, sizes, args.max_seconds, rng)
    env.use_cache(True)  # solvers run as users run them
    full_grid = device.type == "cuda" and len(env.groups) <= 6 and not args.quick
    return {
        "strategy": env.batch_strategy,
        "forward_s": forward,
        "step_s": step,
        "step_over_forward": step / forward,
        "candidates_per_s": rates,
        "solvers": solver_times(env, full_grid),
    }


def print_task(name: str, sides: dict[str, dict]) -> None:
    print(f"\n## {name}")
    labels = list(sides)
    print(f"{'':<34}" + "".join(f"{label:>22}" for label in labels))
    rows = [
        ("batched strategy", lambda s: s["strategy"]),
        ("dense forward (ms)", lambda s: f"{1e3 * s['forward_s']:.3f}"),
        ("env.step (ms)", lambda s: f"{1e3 * s['step_s']:.3f}"),
        ("step / forward", lambda s: f"{s['step_over_forward']:.2f}"),
    ]
    for k in next(iter(sides.values()))["candidates_per_s"]:
        rows.append((f"candidates/s at K={k}", lambda s, k=k: _rate(s["candidates_per_s"][k])))
    for solver in dict.fromkeys(n for side in sides.values() for n in side["solvers"]):
        rows.append((f"{solver} (s)", lambda s, n=solver: _solver(s["solvers"].get(n))))
    for label, cell in rows:
        print(f"{label:<34}" + "".join(f"{cell(side):>22}" for side in sides.values()))
    if len(sides) == 2:
        cpu, other = sides.values()
        for k, rate in other["candidates_per_s"].items():
            base = cpu["candidates_per_s"].get(k)
            if isinstance(rate, float) and isinstance(base, float):
                print(f"  {labels[1]} / cpu at K={k}: {rate / base:.1f}×")


def _rate(value) -> str:
    return f"{value:,.0f}" if isinstance(value, float) else str(value)


def _solver(value) -> str:
    if value is None:
        return "-"
    return f"{value['seconds']:.2f} ({value['evaluations']} ev)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="the device side (default: auto)")
    parser.add_argument("--tasks", nargs="+", default=None)
    parser.add_argument("--quick", action="store_true", help="two tasks, K <= 128")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"])
    parser.add_argument("--max-seconds", type=float, default=30.0, help="longest batch timed")
    parser.add_argument("--batching", default="auto", help="the environments' batching")
    parser.add_argument("--json", default="gpu_throughput.json", help="where to write results")
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        parser.exit(2, f"gpu_throughput.py: error: {error}\n")
    tasks = args.tasks or (QUICK_TASKS if args.quick else TASKS)
    sides = [torch.device("cpu")] + ([device] if device.type != "cpu" else [])
    names = {str(side): device_name(side) for side in sides}
    print(f"# Throughput: {', '.join(f'{k} ({v})' for k, v in names.items())}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {args.precision}, "
          f"batching {args.batching}")  # fmt: skip
    report = {"devices": names, "torch": torch.__version__, "precision": args.precision,
              "batching": args.batching,
              "command": " ".join(sys.argv), "tasks": {}}  # fmt: skip
    for name in tasks:
        rng = np.random.default_rng(0)
        measured = {str(side): measure(name, side, args, rng) for side in sides}
        report["tasks"][name] = measured
        print_task(name, measured)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
