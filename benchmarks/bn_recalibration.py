"""Adaptive BatchNorm (``bn_recalibration=B``) against the dense statistics, in one run.

    python benchmarks/bn_recalibration.py [--budget 60]

Tasks: the shipped MNIST convnet (top-1 accuracy on its 1,000 evaluation digits; 4
calibration batches of 250 training digits) and the tests' residual network
(``tests/residual_task.py``: MSE against the dense outputs; 2 calibration batches of 32).
For each compensation (``none``, ``mean``) and ``B`` in {0, 1, all batches}, it runs the
``uniform`` solver at targets 0.2, 0.4 and 0.6 and FD momentum (``--budget`` evaluations) at
0.4, and prints the metric and the median seconds of one ``env.step`` (20 steps alternating
the uniform answer at 0.4 and 0.9 times it, cache off). Both metrics are deterministic: no
intervals.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from prunegym.agents import Budget, make_agent
from prunegym.bench.timing import median_step_seconds
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks import make_task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from residual_task import ResidualTask  # noqa: E402

TARGETS = (0.2, 0.4, 0.6)


def _rows(task, batches: int, budget: int, bar) -> list[tuple]:
    rows = []
    for compensation in ("none", "mean"):
        for count in sorted({0, 1, batches}):
            env = PruneEnv(task, compensation=compensation, bn_recalibration=count)
            cells, answer = [], None
            for target in TARGETS:
                env.reset(seed=0, options={"target": target})
                result = make_agent("uniform", progress=False).run(env)
                cells.append(result.metric)
                answer = result.coefficients if target == 0.4 else answer
                bar.update(1)
            env.reset(seed=0, options={"target": 0.4})
            agent = make_agent("fd-momentum", progress=False, seed=0)
            fd = agent.run(env, Budget(evaluations=budget))
            bar.update(1)
            seconds = median_step_seconds(env, np.asarray(answer))
            rows.append((compensation, count, *cells, fd.metric, fd.sparsity, seconds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budget", type=int, default=60, help="FD-momentum evaluations")
    args = parser.parse_args()
    tasks = [(make_task("mnist-convnet"), 4, "accuracy"), (ResidualTask(), 2, "mse")]
    cells = sum(2 * len({0, 1, b}) * (len(TARGETS) + 1) for _, b, _ in tasks)
    with tqdm(total=cells, desc="adaptive BN") as bar:
        tables = [(task, name, _rows(task, b, args.budget, bar)) for task, b, name in tasks]
    for task, name, rows in tables:
        print(f"\n{task.name} ({name}; uniform at 0.2/0.4/0.6, FD momentum at 0.4)\n")
        print("| compensation | B | uniform 0.2 | uniform 0.4 | uniform 0.6 | FD 0.4 | "
              "FD sparsity | s/step |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        for compensation, count, *values, sparsity, seconds in rows:
            metrics = " | ".join(f"{v:.4f}" if name == "accuracy" else f"{v:.4g}" for v in values)
            print(f"| {compensation} | {count} | {metrics} | {sparsity:.4f} | {seconds:.4f} |")


if __name__ == "__main__":
    main()
