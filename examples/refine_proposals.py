"""Does screening the local search's proposals help the refinement? Off-table targets and zoo.

    python examples/refine_proposals.py [--proposals 8] [--refine 50]
        [--zoo 2003-2027] [--tasks toy,mnist-classifier,diffusion-sorption,mnist-ae]
        [--seed 0] [--out runs/leave-one-out]

``learned-policy:screen=true,refine=50`` with ``proposals=1`` (each evaluated candidate is one
Gaussian step) and with ``proposals=P`` (the least distorted of ``P`` steps, by the outputs on
the task's calibration batches; no metric evaluated to choose), each against random search given
the same 51 evaluations. These are the design's own cases, kept off the leave-one-out table:

- the zoo's networks ``--zoo A-B`` (``make_task("zoo", seed=S)`` for A ≤ S < B) at 20, 40 and
  60 %, with the shipped policy;
- the tasks ``--tasks`` at 15, 25, ..., 65 % (the table asks 10, 20, ..., 70 %), each with the
  policy trained without it (``examples/leave_one_out.py --seed S`` trains and keeps them in
  ``--out``; give ``--tasks ''`` to skip them).

Every metric here is deterministic, so differences are exact. The table counts, per variant,
the cases better than, equal to and worse than random search, and how the two variants compare;
the seconds are each variant's wall time (the refinements only).
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

from tqdm import tqdm

from prunegym.agents import make_agent
from prunegym.agents.policy_training import RECIPE
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks import make_task

ZOO_TARGETS = (0.2, 0.4, 0.6)
TASK_TARGETS = (0.15, 0.25, 0.35, 0.45, 0.55, 0.65)


def _zoo_env(seed: int) -> PruneEnv:
    return PruneEnv(make_task("zoo", seed=seed), granularity="channel")


def cases(args) -> list[tuple[dict, object, tuple[float, ...]]]:
    """``(the policy option, {} for the shipped policy; env builder; targets)`` per case."""
    first, _, last = args.zoo.partition("-")
    found = []
    for seed in range(int(first), int(last)) if args.zoo else ():
        found.append(({}, partial(_zoo_env, seed), ZOO_TARGETS))
    for task in filter(None, args.tasks.split(",")):
        path = Path(args.out) / f"without-{task}-seed{args.seed}-g{RECIPE['generations']}.pt"
        if not path.is_file():
            raise SystemExit(
                f"{path}: no policy trained without {task}; run python examples/leave_one_out.py "
                f"--tasks {task} --seed {args.seed} first, or leave {task} out of --tasks"
            )
        build = partial(PruneEnv, task, granularity="channel")
        found.append(({"policy": str(path)}, build, TASK_TARGETS))
    return found


def _metric(env: PruneEnv, target: float, solver: str, **options) -> float:
    env.reset(options={"target": target})
    return make_agent(solver, progress=False, **options).run(env).metric


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proposals", type=int, default=8)
    parser.add_argument("--refine", type=int, default=50)
    parser.add_argument("--zoo", default="2003-2027", help="zoo seeds A-B (A ≤ seed < B); '' none")
    parser.add_argument("--tasks", default="toy,mnist-classifier,diffusion-sorption,mnist-ae")
    parser.add_argument("--seed", type=int, default=0, help="the leave-one-out policies' seed")
    parser.add_argument("--out", default="runs/leave-one-out")
    args = parser.parse_args()
    if args.proposals < 2 or args.refine < 1:
        parser.error("need --proposals >= 2 and --refine >= 1")
    if args.zoo and not (args.zoo.count("-") == 1 and args.zoo.replace("-", "").isdigit()):
        parser.error(f"--zoo {args.zoo!r}: give A-B, e.g. 2003-2027")
    variants = {"proposals=1": 1, f"proposals={args.proposals}": args.proposals}
    versus_random = {name: [0, 0, 0] for name in variants}  # better, equal, worse
    between, seconds = [0, 0], dict.fromkeys(variants, 0.0)
    todo = cases(args)
    bar = tqdm(total=sum(len(targets) for *_, targets in todo), desc="cases", unit="case")
    for policy, build, targets in todo:
        env = build()
        sign = 1.0 if env.unwrapped.task.higher_is_better else -1.0
        for target in targets:
            random = sign * _metric(env, target, "random", samples=args.refine + 1)
            scores = {}
            for name, proposals in variants.items():
                options = {"screen": True, "refine": args.refine, "proposals": proposals, **policy}
                started = time.perf_counter()
                scores[name] = sign * _metric(env, target, "learned-policy", **options)
                seconds[name] += time.perf_counter() - started
                difference = scores[name] - random
                versus_random[name][0 if difference > 0 else 1 if difference == 0 else 2] += 1
            one, screened = scores.values()
            between[0] += screened > one
            between[1] += screened < one
            bar.update(1)
    bar.close()
    print(f"\n{bar.total} cases, {args.refine + 1} evaluations each:\n")
    print("| refinement | better than random | equal | worse | wall seconds |")
    print("|---|---|---|---|---|")
    for name, (better, equal, worse) in versus_random.items():
        print(f"| {name} | {better} | {equal} | {worse} | {seconds[name]:.0f} |")
    print(f"\nproposals={args.proposals} against proposals=1: better in {between[0]}, worse in "
          f"{between[1]}, equal in {bar.total - sum(between)}")  # fmt: skip


if __name__ == "__main__":
    main()
