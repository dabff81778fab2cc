"""Median PruneEnv.step time over the median dense forward time, in one run, for each task.

    python benchmarks/step_overhead.py [--tasks mnist-ae toy ...] [--repeats 30]

"forward" is one dense pass over the evaluation data: ``model(inputs)`` for tasks whose model
is a Linear chain (``ChainEvaluation``), else the dense ``task.evaluate`` (which adds the
metric; for TD-MPC it is the closed-loop episodes). Steps run with the evaluation cache off, in
two patterns: random (two random coefficient vectors in turn, every group changes) and one
channel (finite-difference probes moving one group by one channel). Two step paths: ``step``
is ``PruneEnv()`` as shipped (sliced chains where the task allows), ``masked`` is
``PruneEnv(batching="sequential")`` (masks written in place, the masked model evaluated).
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np
import torch
from fast_evaluation import cycle_steps, median_seconds, step_patterns

from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks import make_task, task_names
from prunegym.tasks.capabilities import ChainEvaluation


def measure(task_name: str, repeats: int) -> None:
    task = make_task(task_name)
    envs = {
        "step": PruneEnv(task, cache=False),
        "masked": PruneEnv(task, cache=False, batching="sequential"),
    }
    model = envs["masked"].model
    chain = task.evaluation_chain(model) if isinstance(task, ChainEvaluation) else None
    if chain is not None:
        forward, what = torch.no_grad()(partial(model, chain[0])), "model(inputs)"
    else:
        forward, what = partial(task.evaluate, model), "task.evaluate"
    repeats = repeats if chain is not None or task_name == "toy" else max(5, repeats // 5)
    forward_seconds = median_seconds(forward, repeats)
    print(f"{task_name}: dense forward ({what}) {forward_seconds * 1e3:.3f} ms, "
          f"step strategy {envs['step'].batch_strategy}")  # fmt: skip
    for label, env in envs.items():
        ratios = []
        for name, actions in step_patterns(env, np.random.default_rng(0)).items():
            env.reset()
            seconds = median_seconds(cycle_steps(env, actions), repeats)
            ratios.append(f"{name} {seconds * 1e3:.3f} ms ({seconds / forward_seconds:.3f})")
        print(f"  {label:<7} step/forward: {', '.join(ratios)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(task_names()))
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of "
          f"{args.repeats} (TD-MPC and other non-chain tasks: fewer)")  # fmt: skip
    for task_name in args.tasks:
        measure(task_name, args.repeats)


if __name__ == "__main__":
    main()
