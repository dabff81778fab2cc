"""Cost of one evaluation of the TD-MPC pendulum task (K fixed-seed episodes, batched).

    python benchmarks/tdmpc_evaluation.py [--episodes 8] [--repeats 5] [--plan]

Prints the median wall time of ``task.evaluate(model)`` in policy mode and, with ``--plan``,
of one run in planning mode, measured in this run.
"""

from __future__ import annotations

import argparse
import statistics
import time

from prunegym.tasks.tdmpc_pendulum import TDMPCPendulumTask


def _time(task, model, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        task.evaluate(model)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--plan", action="store_true", help="also time planning mode")
    args = parser.parse_args()
    policy = TDMPCPendulumTask(episodes=args.episodes)
    model = policy.build_model()
    policy_seconds = _time(policy, model, args.repeats)
    print(f"K = {args.episodes} episodes of 100 decisions, evaluated together")
    print(f"policy mode: {policy_seconds * 1000:.0f} ms per evaluation (median of {args.repeats})")
    if args.plan:
        plan = TDMPCPendulumTask(episodes=args.episodes, mode="plan")
        plan_seconds = _time(plan, model, 1)
        print(f"plan mode:   {plan_seconds * 1000:.0f} ms per evaluation (1 run)")
        print(f"plan / policy: {plan_seconds / policy_seconds:.1f}x")


if __name__ == "__main__":
    main()
