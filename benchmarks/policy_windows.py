"""Does the learned policy's answer land in every window that holds an allocation?

    python benchmarks/policy_windows.py [--task toy] [--tolerances 0.005,0.003,0.001]
        [--walk 256,128] [--policy PATH]

On a task whose allocations can all be listed (the toy task: 4.4 million channel-count
combinations), every target from 0.02 to 0.93 in steps of 0.005 is asked of the policy (the
shipped one unless ``--policy``), with nothing evaluated, at each tolerance. It prints, per
tolerance, how many targets there are, how many windows hold some allocation, and the targets
whose window holds one but whose answer lies outside it. ``--walk MOVES,PATIENCE`` sets the
channel walk of the answers (256,128 is the policy's; 64,16 that of training and the local
search).
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from prunegym.agents import learned_policy
from prunegym.envs.prune_env import PruneEnv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="toy")
    parser.add_argument("--tolerances", default="0.005,0.003,0.001")
    parser.add_argument("--walk", default=",".join(map(str, learned_policy.ANSWER_WALK)))
    parser.add_argument("--policy", default=None, help="policy file (default: the shipped one)")
    args = parser.parse_args()
    learned_policy.ANSWER_WALK = tuple(int(n) for n in args.walk.split(","))
    policy = learned_policy.load_policy(args.policy)
    targets = np.round(np.arange(0.02, 0.9301, 0.005), 3)
    started = time.perf_counter()
    env = PruneEnv(args.task, granularity="channel")
    channels = np.asarray(env.channels)
    upper = float(env.action_space.high.max())
    tops = env.pruned_counts(np.full(len(channels), upper))
    if np.prod([top + 1 for top in tops], dtype=float) > 2e7:
        parser.error(f"--task {args.task}: too many allocations to list")
    counts = np.array(list(itertools.product(*[range(top + 1) for top in tops])))
    reachable = np.sort(env.sparsity_of(np.minimum(counts / channels, upper)))
    print(f"{args.task}: {len(counts):,} allocations; walk {learned_policy.ANSWER_WALK}")
    for tolerance in (float(t) for t in args.tolerances.split(",")):
        env = PruneEnv(args.task, granularity="channel", tolerance=tolerance)
        answers = env.sparsity_of(learned_policy.propose(policy, env, targets))
        nearest = np.searchsorted(reachable, targets)
        gaps = np.minimum(
            np.abs(reachable[np.clip(nearest, 0, len(reachable) - 1)] - targets),
            np.abs(reachable[np.clip(nearest - 1, 0, len(reachable) - 1)] - targets),
        )
        holds = gaps <= tolerance
        missed = holds & (np.abs(answers - targets) > tolerance)
        outside = zip(targets[missed], answers[missed], strict=True)
        listed = "".join(f", {t:g} (answer {a:.4f})" for t, a in outside)
        print(f"±{tolerance:g}: {len(targets)} targets, {holds.sum()} windows hold an "
              f"allocation, {missed.sum()} answers outside them{listed}")  # fmt: skip
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
