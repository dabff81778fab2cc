"""Zero-shot on held-out tasks with the learned correction scaled by a strength κ.

    python examples/correction_strength.py [--tasks toy,mnist-classifier,...]
        [--targets 0.15,...,0.65] [--seeds 0,1,2] [--strengths 0,0.25,0.5,0.75,1]
        [--out runs/leave-one-out]

The policy's direction is ``(prior + 0.01) · exp(κ · 1.5 · tanh(logit))``: κ = 1 is the
policy as trained, κ = 0 the ``lamp`` prior (plus the floor) alone. For each held-out task X
and training seed, the policy trained without X (``examples/leave_one_out.py`` keeps them in
``--out``) answers zero-shot at every target and strength, and each cell counts the targets
where the answer beats both ``norm`` and ``uniform``, the leave-one-out goal. Only
deterministic tasks are scored (every answer is one exact evaluation); the default targets
lie between the leave-one-out table's, so this asks what that table never asked.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from prunegym.agents import make_agent
from prunegym.agents.learned_policy import load_policy, propose
from prunegym.agents.policy_training import RECIPE
from prunegym.envs.prune_env import PruneEnv

DETERMINISTIC = ["toy", "mnist-classifier", "diffusion-sorption", "mnist-ae", "mnist-convnet"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(DETERMINISTIC))
    parser.add_argument("--targets", default="0.15,0.25,0.35,0.45,0.55,0.65")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--strengths", default="0,0.25,0.5,0.75,1")
    parser.add_argument("--out", default="runs/leave-one-out", help="the cached policies")
    args = parser.parse_args(argv)
    targets = [float(t) for t in args.targets.split(",")]
    strengths = [float(k) for k in args.strengths.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    print("| held-out task | seed | " + " | ".join(f"κ = {k:g}" for k in strengths) + " |")
    print("|---|---|" + "---|" * len(strengths))
    totals = np.zeros(len(strengths), dtype=int)
    for task in args.tasks.split(","):
        name = "without-{task}-seed{seed}-g{generations}.pt"  # as leave_one_out.py names them
        paths = [
            Path(args.out) / name.format(task=task, seed=seed, generations=RECIPE["generations"])
            for seed in seeds
        ]
        missing = [str(path) for path in paths if not path.is_file()]
        if missing:
            parser.error(f"no policy {missing[0]}: train it with examples/leave_one_out.py")
        env = PruneEnv(task, granularity="channel", observation="features")
        if env.task.test_episodes:
            parser.error(f"--tasks {task}: its metric is noisy; only deterministic tasks")
        sign = 1.0 if env.task.higher_is_better else -1.0
        baseline = []  # the better of norm and uniform, sign-adjusted, per target
        for target in targets:
            env.reset(options={"target": target})
            runs = [make_agent(name, progress=False).run(env) for name in ("norm", "uniform")]
            baseline.append(max(sign * run.metric for run in runs))
        for seed, path in zip(seeds, paths, strict=True):
            policy = load_policy(path)
            cells = []
            for column, strength in enumerate(strengths):
                answers = propose(policy, env, targets, strength=strength)
                wins = 0
                for target, answer, best in zip(targets, answers, baseline, strict=True):
                    env.target = target
                    wins += sign * env.evaluate_batch(answer[None])[0]["metric"] > best
                totals[column] += wins
                cells.append(f"{wins}/{len(targets)}")
            print(f"| {task} | {seed} | " + " | ".join(cells) + " |", flush=True)
    print("| all | | " + " | ".join(str(total) for total in totals) + " |")


if __name__ == "__main__":
    main()
