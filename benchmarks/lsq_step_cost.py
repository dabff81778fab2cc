"""Seconds per ``env.step`` with ``lsq`` against ``mean`` compensation, in one run.

    python benchmarks/lsq_step_cost.py [--task mnist-ae] [--steps 30]

Both environments evaluate one candidate at a time (``batching="sequential"``, cache off), so
the ratio is the cost of the masks and refits; every step is a new random mask (uniform 0.1
to 0.6 per group), the two environments alternate, and the medians are printed with their
ratio. A second line does the same with each environment's default strategy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks import make_task

SETTINGS = {"mean": "compensated", "lsq": "lsq"}  # compensation: its matching criterion


def _medians(task, steps: int, batching: str) -> dict[str, float]:
    envs = {
        compensation: PruneEnv(
            task, compensation=compensation, criterion=criterion, batching=batching, cache=False
        )  # fmt: skip
        for compensation, criterion in SETTINGS.items()
    }
    rows = np.random.default_rng(0).uniform(0.1, 0.6, (steps, len(envs["mean"].groups)))
    times: dict[str, list[float]] = {name: [] for name in envs}
    for row in rows:
        for name, env in envs.items():
            started = time.perf_counter()
            env.step(row)
            times[name].append(time.perf_counter() - started)
    return {name: float(np.median(values)) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", default="mnist-ae")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    task = make_task(args.task)
    for batching in ("sequential", "auto"):
        medians = _medians(task, args.steps, batching)
        ratio = medians["lsq"] / medians["mean"]
        print(f"{args.task}, batching={batching}: mean {1000 * medians['mean']:.1f} ms, lsq "
              f"{1000 * medians['lsq']:.1f} ms per step, lsq/mean {ratio:.2f}×")  # fmt: skip


if __name__ == "__main__":
    main()
