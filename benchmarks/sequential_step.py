"""What one step of an AMC-style episode costs, against one dense evaluation, in one run per task.

    python benchmarks/sequential_step.py [--tasks toy mnist-ae] [--episodes 40]

``SequentialPruneEnv`` (``prunegym/PruneSequential-v0``, hard budget on, cache off) runs
``--episodes`` episodes of random actions at targets spread over 10–70 %. A non-final step
projects the action (exact sparsity counts, no evaluation) and builds the observation; the
final step also evaluates the model once. "evaluation" is one dense ``task.evaluate(model)``
(a forward over the evaluation data and the metric). Prints median milliseconds and the ratios
to that evaluation, and how many episodes ended in the window.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from prunegym.envs.sequential import SequentialPruneEnv


def measure(name: str, episodes: int) -> None:
    env = SequentialPruneEnv(name)
    env.core.use_cache(False)
    task, model = env.core.task, env.core.model
    task.evaluate(model)
    evaluations = []
    for _ in range(20):
        started = time.perf_counter()
        task.evaluate(model)
        evaluations.append(time.perf_counter() - started)
    evaluation = statistics.median(evaluations)
    rng = np.random.default_rng(0)
    middle, final, landed = [], [], 0
    for target in np.linspace(0.1, 0.7, episodes):
        env.reset(options={"target": float(target)})
        done = False
        while not done:
            action = rng.uniform(0.0, 0.95, 1).astype(np.float32)
            started = time.perf_counter()
            *_, done, _, info = env.step(action)
            (final if done else middle).append(time.perf_counter() - started)
        landed += bool(info["feasible"])
    steps = {"non-final step": statistics.median(middle), "final step": statistics.median(final)}
    print(f"{name}: {len(env.groups)} groups, one dense evaluation {evaluation * 1e3:.3f} ms")
    for label, seconds in steps.items():
        print(f"  {label:<15} {seconds * 1e3:8.3f} ms  ({seconds / evaluation:.2f} evaluations)")
    print(f"  in the window: {landed} of {episodes} episodes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["toy", "mnist-ae"])
    parser.add_argument("--episodes", type=int, default=40)
    args = parser.parse_args()
    for task in args.tasks:
        measure(task, args.episodes)


if __name__ == "__main__":
    main()
