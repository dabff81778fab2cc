"""Median time of PruneEnv.step over the median time of one dense forward pass, in one run.

    python benchmarks/step_overhead.py [--task mnist-ae] [--repeats 50]

Both are measured on the same evaluation batch. Two step patterns:

- random: alternating between two random coefficient vectors, so most masked slices change;
- one channel: finite-difference probes, each moving one group by one channel from a fixed
  point (what FD momentum and grid neighbours do), so a step rewrites a few slices only.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from prunegym.env import PruneEnv


def median_seconds(function, repeats: int) -> float:
    for _ in range(3):
        function()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", default="mnist-ae")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--criterion", default="compensated")
    parser.add_argument("--compensation", default="mean")
    args = parser.parse_args()

    env = PruneEnv(args.task, criterion=args.criterion, compensation=args.compensation)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = [rng.uniform(0.0, 0.6, len(env.groups)).astype(np.float32) for _ in range(2)]
    turn = iter(range(10**9))

    def step() -> None:
        env.step(actions[next(turn) % 2])

    base = actions[0].astype(np.float64)
    probes = []
    for group in range(len(env.groups)):
        probe = base.copy()
        probe[group] = min(probe[group] + 1.0 / env.channels[group], 0.95)
        probes += [probe, base]

    def probe_step() -> None:
        env.step(probes[next(turn) % len(probes)])

    batch = env.task.eval_images if hasattr(env.task, "eval_images") else env.task.inputs

    @torch.no_grad()
    def forward() -> None:
        env.task.forward(env.model, batch)

    def evaluate() -> None:
        env.task.evaluate(env.model)

    env.reset()
    forward_seconds = median_seconds(forward, args.repeats)
    evaluate_seconds = median_seconds(evaluate, args.repeats)
    step_seconds = median_seconds(step, args.repeats)
    probe_seconds = median_seconds(probe_step, args.repeats)
    env.reset()
    forward_seconds = min(forward_seconds, median_seconds(forward, args.repeats))
    print(
        f"task              {args.task} ({args.criterion}, {args.compensation}), "
        f"batch {tuple(batch.shape)}, {torch.get_num_threads()} torch threads"
    )
    print(f"dense forward     {forward_seconds * 1e3:8.3f} ms  (median of {args.repeats})")
    print(f"dense evaluate    {evaluate_seconds * 1e3:8.3f} ms  (forward + metric)")
    print(f"env.step random   {step_seconds * 1e3:8.3f} ms  (median of {args.repeats})")
    print(f"env.step 1 chan.  {probe_seconds * 1e3:8.3f} ms  (median of {args.repeats})")
    print(f"step / forward    {step_seconds / forward_seconds:8.3f} random, "
          f"{probe_seconds / forward_seconds:.3f} one channel")  # fmt: skip


if __name__ == "__main__":
    main()
