"""The learned policy against the search solvers, target by target, in one run.

    python examples/learned_policy_table.py [--task mnist-ae] [--targets 0.1,...,0.7]
        [--policy FILE] [--refine 50]

Rows: the policy's answer (no search: one evaluation, of the answer), the policy refined with
``--refine`` evaluations (``lamp``'s answer's, then its local search's; ``--refine`` + 1 in
all, the answer's included),
FD momentum from scratch, random search with the same evaluations in all (``--refine`` + 1),
and the one-shot baselines ``uniform``, ``norm`` and ``lamp``
(the prior the policy corrects). Cells: the metric (marked ``*`` outside the ±1 % window) and
the evaluations spent.
"""

from __future__ import annotations

import argparse
import time

from prunegym.agents import make_agent
from prunegym.envs.prune_env import PruneEnv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mnist-ae")
    parser.add_argument("--targets", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7")
    parser.add_argument("--policy", default=None, help="policy file (default: the shipped one)")
    parser.add_argument("--refine", type=int, default=50)
    args = parser.parse_args()
    targets = [float(t) for t in args.targets.split(",")]
    policy = {} if args.policy is None else {"policy": args.policy}
    solvers = {
        "learned-policy": ("learned-policy", policy),
        f"learned-policy refine={args.refine}": (
            "learned-policy", {**policy, "refine": args.refine}
        ),
        "fd-momentum": ("fd-momentum", {}),
        f"random ({args.refine + 1})": ("random", {"samples": args.refine + 1}),
        "uniform": ("uniform", {}),
        "norm": ("norm", {}),
        "lamp (the policy's prior)": ("lamp", {}),
    }  # fmt: skip
    env = PruneEnv(args.task, granularity="channel")
    started = time.perf_counter()
    table = {name: [] for name in solvers}
    for target in targets:
        for name, (solver, options) in solvers.items():
            env.reset(options={"target": target})
            result = make_agent(solver, progress=False, **options).run(env)
            star = "" if result.feasible else "*"
            table[name].append(f"{result.metric:.2f}{star} ({result.evaluations})")
    print(f"{args.task}: {env.task.metric} (evaluations), dense {env.dense_metric:.2f}; "
          f"{time.perf_counter() - started:.0f} s\n")  # fmt: skip
    print("| solver | " + " | ".join(f"{t:.0%}" for t in targets) + " |")
    print("|---|" + "---|" * len(targets))
    for name, cells in table.items():
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
