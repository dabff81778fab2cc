"""Does the calibration screen help the shipped policy on the tasks it was trained on?

    python examples/screen_on_training_tasks.py [--tasks mnist-ae,toy,...] (default: all six)
        [--targets 0.1,...,0.7] [--test-episodes 1000]

The shipped policy answers each training task zero-shot twice, with ``screen=true`` and with
``screen=false``; the table gives screened − unscreened (positive: the screen is better) and the
candidate the screen chose. Deterministic metrics are compared directly; on TD-MPC both answers
are scored on ``--test-episodes`` held-out test episodes, with the paired 95 % interval. This is
the evidence for ``screen=auto``, the default: screen where the metric is read from the outputs
of a data batch, not on the closed loop.
"""

from __future__ import annotations

import argparse
import inspect
import time

from prunegym.agents import make_agent
from prunegym.agents.policy_training import RECIPE
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks import make_task, task_factory
from prunegym.tasks.intervals import paired_difference


def _env(name: str, test_episodes: int) -> PruneEnv:
    takes = inspect.signature(task_factory(name)).parameters
    options = {"test_episodes": test_episodes} if "test_episodes" in takes else {}
    return PruneEnv(make_task(name, **options), granularity="channel")


def _difference(screened, unscreened, sign: float) -> str:
    """screened − unscreened as text, positive where the screened answer is better."""
    if screened.test_values:
        mean, half = paired_difference(screened.test_values, unscreened.test_values)
        return f"{sign * mean:+.1f} ± {half:.1f}"
    gain = sign * (screened.metric - unscreened.metric)
    return f"{gain:+.3g}" if gain else "0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(RECIPE["tasks"]))
    parser.add_argument("--targets", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7")
    parser.add_argument("--test-episodes", type=int, default=1000, help="for noisy tasks")
    args = parser.parse_args()
    targets = [float(t) for t in args.targets.split(",")]
    unknown = sorted(set(args.tasks.split(",")) - set(RECIPE["tasks"]))
    if unknown:
        parser.error(f"--tasks {','.join(unknown)}: not a training task {sorted(RECIPE['tasks'])}")
    started = time.perf_counter()
    print("screened − unscreened answer of the shipped policy (positive: the screen is better; "
          "the screen's choice in parentheses)\n")  # fmt: skip
    print("| task | " + " | ".join(f"{t:.0%}" for t in targets) + " |")
    print("|---|" + "---|" * len(targets))
    for name in args.tasks.split(","):
        env = _env(name, args.test_episodes)
        sign = 1.0 if env.task.higher_is_better else -1.0
        cells = []
        for target in targets:
            runs = {}
            for screen in (True, False):
                env.reset(options={"target": target})
                runs[screen] = make_agent("learned-policy", screen=screen, progress=False).run(env)
            chosen = runs[True].details["screen"]["chosen"]
            cells.append(f"{_difference(runs[True], runs[False], sign)} ({chosen})")
        print(f"| {name} ({env.task.metric}) | " + " | ".join(cells) + " |", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
