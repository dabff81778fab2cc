"""Stable-Baselines3 agents on one environment against K batched copies, in one run.

    python benchmarks/sb3_batched.py [--task mnist-ae] [--budget 256] [--envs 1 8]

For each algorithm and ``n_envs``: wall seconds for the same number of evaluations, and the
best feasible metric found (20 % ± 1 % target). With ``n_envs > 1`` every vector step is one
``env.unwrapped.evaluate_batch`` call (``BatchedPruneVecEnv``).
"""

from __future__ import annotations

import argparse
import time

from prunegym.agents import make_agent
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks import make_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mnist-ae")
    parser.add_argument("--budget", type=int, default=256)
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--algos", nargs="+", default=["ppo", "sac"])
    args = parser.parse_args()
    task = make_task(args.task)
    for algo in args.algos:
        for n_envs in args.envs:
            env = PruneEnv(task, target=0.2)
            started = time.perf_counter()
            result = make_agent(algo, n_envs=n_envs, progress=False).run(env, args.budget)
            wall = time.perf_counter() - started
            best = f"{result.metric_name} {result.metric:.3f} (feasible {result.feasible})"
            print(f"{algo} n_envs={n_envs}: {result.evaluations} evaluations in {wall:.2f} s, "
                  f"best {best}")  # fmt: skip


if __name__ == "__main__":
    main()
