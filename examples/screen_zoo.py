"""Does the calibration screen help on networks no policy saw? Zoo networks, zero-shot.

    python examples/screen_zoo.py [--first 3000] [--networks 24] [--policy FILE]

On the zoo's networks ``first .. first+networks−1`` (``make_task("zoo", seed=S)``; no policy
was trained on them, nor is the screen's design taken from them), at targets 10 % to 70 %,
four zero-shot answers are compared, each with one evaluation and no search:

- ``lamp``, the prior;
- the policy's answer (``--policy``; default: the shipped policy);
- the screened answer (``learned-policy:screen=true``: the least distorted, on the network's
  calibration digits, of the policy's answer, the prior and six blends of the prior toward
  ``uniform`` and ``norm``);
- the screen without the policy (the prior and its six blends only).

For each, the table counts the answers that beat both ``norm`` and ``uniform`` (strictly),
those better and worse than ``lamp``'s, and those as good as the best of the screen's eight
candidates. A fifth row, the best of the eight (each candidate in the window evaluated: up to
eight evaluations, not zero-shot), shows how much a better choice among them could gain. Every
metric is deterministic (a loss on 500 test digits), so differences are exact.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tqdm import tqdm

from prunegym.agents import make_agent
from prunegym.agents.allocation import lamp_answer
from prunegym.agents.learned_policy import load_policy, propose
from prunegym.agents.policy_screen import in_window, screen_candidates, screened_answer
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks import make_task

TARGETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
BEST = "best of the screen's eight"
ANSWERS = ("lamp", "policy", "screened", "screen without the policy", BEST)


def answers(env: PruneEnv, policy, target: float) -> dict[str, np.ndarray]:
    """The four zero-shot answers ``(m,)`` at ``target`` (no metric evaluated). Without the
    policy, the screen is given the prior in the policy's place."""
    core = env.unwrapped
    prior, proposed = lamp_answer(core, target), propose(policy, core, [target])[0]
    return {
        "lamp": prior, "policy": proposed,
        "screened": screened_answer(core, proposed, target)[0],
        "screen without the policy": screened_answer(core, prior, target)[0],
    }  # fmt: skip


def best_of_the_eight(env: PruneEnv, proposed: np.ndarray, target: float) -> float:
    """The best metric (higher is better: signed) among the screen's candidates in the window
    (:func:`screen_candidates`), each evaluated."""
    core = env.unwrapped
    eight = screen_candidates(core, proposed, target)
    inside = eight[in_window(core, eight, target)]
    sign = 1.0 if core.task.higher_is_better else -1.0
    return max(sign * info["metric"] for info in core.evaluate_batch(inside))


def tally(networks, policy) -> dict[str, list[int]]:
    """Per answer: ``[beats norm and uniform, better than lamp, worse than lamp, as good as
    the best of the screen's eight]``."""
    counts = {name: [0, 0, 0, 0] for name in ANSWERS}
    for seed in tqdm(networks, desc="zoo networks", unit="network"):
        env = PruneEnv(make_task("zoo", seed=seed), granularity="channel")
        sign = 1.0 if env.unwrapped.task.higher_is_better else -1.0
        for target in TARGETS:
            env.reset(options={"target": target})
            rows = answers(env, policy, target)
            found = env.unwrapped.evaluate_batch(np.stack(list(rows.values())))
            metric = {name: sign * info["metric"] for name, info in zip(rows, found, strict=True)}
            metric[BEST] = best_of_the_eight(env, rows["policy"], target)
            baselines = []
            for name in ("norm", "uniform"):
                env.reset(options={"target": target})
                baselines.append(sign * make_agent(name, progress=False).run(env).metric)
            for name in ANSWERS:
                counts[name][0] += metric[name] > max(baselines)
                counts[name][1] += metric[name] > metric["lamp"]
                counts[name][2] += metric[name] < metric["lamp"]
                counts[name][3] += metric[name] >= metric[BEST]
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", type=int, default=3000, help="first zoo network's seed")
    parser.add_argument("--networks", type=int, default=24)
    parser.add_argument("--policy", help="policy file (default: the shipped policy)")
    args = parser.parse_args()
    if args.first < 0 or args.networks < 1:
        parser.error("need --first >= 0 and --networks >= 1")
    started = time.perf_counter()
    counts = tally(range(args.first, args.first + args.networks), load_policy(args.policy))
    answered = args.networks * len(TARGETS)
    print(f"\nzoo-{args.first} to zoo-{args.first + args.networks - 1}, {answered} answers "
          "(10 % to 70 %):\n")  # fmt: skip
    print("| answer | beats `norm` and `uniform` | better than `lamp` | worse than `lamp` | "
          "as good as the best of the eight |")  # fmt: skip
    print("|---|---|---|---|---|")
    for name, (beats, better, worse, best) in counts.items():
        print(f"| {name} | {beats} | {better} | {worse} | {best} |")
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
