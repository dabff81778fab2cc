"""Median PruneEnv.step time over the median dense forward time, in one run, for each task.

    python benchmarks/step_overhead.py [--tasks mnist-ae toy ...] [--repeats 30]

"forward" is one dense pass over the evaluation data: ``model(inputs)`` for tasks whose model
is a Linear chain (``Task.evaluation_chain``), else the dense ``task.evaluate`` (which adds the
metric; for TD-MPC it is the closed-loop episodes). Steps run with the evaluation cache off, in
two patterns: random (two random coefficient vectors in turn, every group changes) and one
channel (finite-difference probes moving one group by one channel). Two step paths: ``step``
is ``PruneEnv()`` as shipped (sliced chains where the task allows), ``masked`` is
``PruneEnv(batching="sequential")`` (masks written in place, the masked model evaluated).
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import numpy as np
import torch

from prunegym.env import PruneEnv
from prunegym.tasks import make_task, task_names


def median_seconds(function, repeats: int) -> float:
    for _ in range(2):
        function()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def cycle_steps(env: PruneEnv, actions: list[np.ndarray]):
    turn = iter(range(10**9))
    return lambda: env.step(actions[next(turn) % len(actions)])


def patterns(env: PruneEnv) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    pair = [rng.uniform(0.0, 0.6, len(env.groups)) for _ in range(2)]
    probes = []
    for group in range(len(env.groups)):
        probe = pair[0].copy()
        probe[group] = min(probe[group] + 1.0 / env.channels[group], 0.95)
        probes += [probe, pair[0]]
    return {"random": pair, "one channel": probes}


def measure(task_name: str, repeats: int) -> None:
    task = make_task(task_name)
    envs = {
        "step": PruneEnv(task, cache=False),
        "masked": PruneEnv(task, cache=False, batching="sequential"),
    }
    model = envs["masked"].model
    chain = task.evaluation_chain(model)
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
        for name, actions in patterns(env).items():
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
