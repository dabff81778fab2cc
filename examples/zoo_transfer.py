"""Does the learned correction carry over to networks it never saw, within one family?

    python examples/zoo_transfer.py [--pool 96] [--draw 12] [--held-out 12]
        [--generations 150] [--learning-rate 0.03] [--pairs 16] [--seed 0]
        [--method es|imitation] [--refine 60] [--steps 1500]

A policy is trained on the zoo's networks ``0 .. pool−1`` only (``make_task("zoo", seed=S)``:
small MLP classifiers, autoencoders and convnets trained on the embedded digits).

- ``es`` (default): the shipped recipe's evolution strategies, ``--draw`` networks per
  generation, one target each.
- ``imitation``: supervised instead. At each of the targets below, every training network is
  searched (``learned-policy:refine=N`` from the untrained policy: the prior, then the local
  search); the policy's log-correction is then fitted to the one that reaches the best
  allocation found (``log((c* + 0.01) / (prior + 0.01))``, centred and weighted by each
  group's share of the parameters, since a common factor cancels in the scaling), by Adam
  over ``--steps`` full passes.

Then, at targets 10 % to 70 %, its zero-shot answers are compared with ``lamp``'s, the prior
it corrects, on twelve of the training networks and on the held-out networks ``1000 ..``
(never drawn in training): how often the correction makes the metric better, how often
worse, and the mean relative change of the metric (positive: better). Every metric is
deterministic. Nothing here uses a shipped task, so the settings can be judged without
touching the leave-one-out table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from prunegym.agents import make_agent
from prunegym.agents.allocation import lamp_answer
from prunegym.agents.learned_policy import (
    PRIOR_FLOOR,
    SetPolicy,
    observations,
    propose,
    save_policy,
)
from prunegym.agents.policy_training import RECIPE, train_policy
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks import make_task

TARGETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
HELD_OUT = 1000  # the first held-out network's seed


def zoo_envs(seeds, desc: str) -> dict[str, PruneEnv]:
    """``zoo-S``: the zoo's network ``S`` at channel granularity with features."""
    return {
        f"zoo-{seed}": PruneEnv(
            make_task("zoo", seed=seed), granularity="channel", observation="features"
        )
        for seed in tqdm(seeds, desc=desc, unit="network", leave=False)
    }


def against_prior(policy, envs: dict[str, PruneEnv], targets=TARGETS) -> dict[str, float]:
    """Zero-shot answers against ``lamp``'s on every network and target: ``better``,
    ``worse`` (counts; the rest are ties) and ``relative``, the mean of
    ``(prior − policy) / |prior|`` for a lower-is-better metric (positive: the policy is
    better)."""
    better = worse = 0
    relative = []
    for env in envs.values():
        core = env.unwrapped
        sign = 1.0 if core.task.higher_is_better else -1.0
        ours = core.evaluate_batch(propose(policy, core, list(targets)))
        prior = core.evaluate_batch(np.stack([lamp_answer(core, t) for t in targets]))
        for a, b in zip(ours, prior, strict=True):
            gain = sign * (a["metric"] - b["metric"])
            better, worse = better + (gain > 0), worse + (gain < 0)
            relative.append(gain / max(abs(b["metric"]), 1e-12))
    return {"better": better, "worse": worse, "relative": float(np.mean(relative))}


def imitate(envs: dict[str, PruneEnv], refine: int, steps: int, seed: int) -> SetPolicy:
    """A policy fitted to the best allocations that ``refine`` evaluations find on each of
    ``envs`` at every target (see the module docstring); CPU, eval mode."""
    samples = []
    with tempfile.TemporaryDirectory() as folder:
        start = Path(folder) / "untrained.pt"
        save_policy(SetPolicy(hidden=RECIPE["hidden"]), start, {})
        for env in tqdm(envs.values(), desc="searching", unit="network", leave=False):
            core = env.unwrapped
            groups, prior, context = observations(core, np.array(TARGETS))
            found = []
            for target in TARGETS:
                env.reset(options={"target": target})
                agent = make_agent("learned-policy", policy=str(start), refine=refine,
                                   screen=False, progress=False, seed=seed)  # fmt: skip
                found.append(agent.run(env).coefficients)
            best = torch.tensor(np.array(found), dtype=torch.float32)
            wanted = torch.log((best + PRIOR_FLOOR) / (prior + PRIOR_FLOOR))
            share = torch.tensor([g.parameters for g in core.groups], dtype=torch.float32)
            samples.append((groups, prior, context, wanted, share / share.sum()))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        policy = SetPolicy(hidden=RECIPE["hidden"])
    optimiser = torch.optim.Adam(policy.parameters(), lr=3e-3)
    for _ in tqdm(range(steps), desc="fitting", unit="step", leave=False):
        optimiser.zero_grad()
        loss = torch.zeros(())
        for groups, prior, context, wanted, share in samples:
            miss = torch.log(policy(groups, prior, context) / (prior + PRIOR_FLOOR)) - wanted
            centred = miss - (miss * share).sum(-1, keepdim=True)
            loss = loss + (centred.pow(2) * share).sum(-1).mean()
        (loss / len(samples)).backward()
        optimiser.step()
    return policy.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=96, help="training networks 0..N-1")
    parser.add_argument("--draw", type=int, default=12, help="networks per generation")
    parser.add_argument("--held-out", type=int, default=12, help=f"networks {HELD_OUT}..")
    parser.add_argument("--generations", type=int, default=RECIPE["generations"])
    parser.add_argument("--learning-rate", type=float, default=RECIPE["learning_rate"])
    parser.add_argument("--pairs", type=int, default=RECIPE["pairs"])
    parser.add_argument("--seed", type=int, default=RECIPE["seed"])
    parser.add_argument("--method", choices=("es", "imitation"), default="es")
    parser.add_argument("--refine", type=int, default=60, help="imitation: search evaluations")
    parser.add_argument("--steps", type=int, default=1500, help="imitation: Adam steps")
    args = parser.parse_args()
    if not 1 <= args.draw <= args.pool or args.held_out < 1:
        parser.error("need 1 <= --draw <= --pool and --held-out >= 1")
    started = time.perf_counter()
    train = zoo_envs(range(args.pool), "training networks")
    held_out = zoo_envs(range(HELD_OUT, HELD_OUT + args.held_out), "held-out networks")
    built = time.perf_counter()
    if args.method == "imitation":
        policy = imitate(train, args.refine, args.steps, args.seed)
    else:
        with tqdm(total=args.generations, desc="training", unit="gen") as bar:
            policy, _ = train_policy(
                train, generations=args.generations, pairs=args.pairs, sigma=RECIPE["sigma"],
                learning_rate=args.learning_rate, targets_per_task=1,
                target_range=tuple(RECIPE["target_range"]), hidden=RECIPE["hidden"],
                seed=args.seed, tasks_per_generation=args.draw,
                progress=lambda generation, row: bar.update(1),
            )  # fmt: skip
    trained = time.perf_counter()
    seen = dict(list(train.items())[: args.held_out])
    print(f"networks built in {built - started:.0f} s, policy trained in {trained - built:.0f} s")
    print(f"\nzero-shot against lamp at {len(TARGETS)} targets (10 % to 70 %):\n")
    print("| networks | better | worse | tied | mean relative change |")
    print("|---|---|---|---|---|")
    for label, envs in ((f"training, zoo-0 to zoo-{len(seen) - 1}", seen),
                        (f"held out, zoo-{HELD_OUT} to zoo-{HELD_OUT + args.held_out - 1}",
                         held_out)):  # fmt: skip
        found = against_prior(policy, envs)
        tied = len(envs) * len(TARGETS) - found["better"] - found["worse"]
        print(f"| {label} | {found['better']} | {found['worse']} | {tied} | "
              f"{found['relative']:+.2%} |")  # fmt: skip
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
