"""Compensation against Torch-Pruning's criteria, in one run (issue 17's table).

    python examples/compensation_table.py [--tasks mnist-ae,tdmpc-pendulum,mnist-convnet]
        [--targets 0.2,0.4,0.6,0.8] [--budget 150] [--json compensation_table.json]

For every task and target it runs:

- Torch-Pruning with each of its criteria (``magnitude``, ``lamp``, ``taylor``, ``hessian``,
  ``fpgm``, and ``bn-scale`` where the model has BatchNorm), global ranking, the channel ratio
  bisected onto the parameter target, no compensation;
- ``uniform`` and FD momentum (``--budget`` evaluations) with each compensation and its
  matching criterion: ``none`` + ``l2``, ``mean`` + ``compensated``, ``optimal`` +
  ``compensated``, ``lsq`` + ``lsq``.

Cells are the task metric of the chosen model: PSNR (dB) for the autoencoder, top-1 for the
convnet, and for TD-MPC the return on the 100 held-out test episodes with its 95 % interval
(the solvers search on 8 other episodes). Sparsity is exact. ``s/step`` is the median of 20
``env.step`` calls of that environment (cache off, two masks alternating). It ends with the
issue's goals, met or missed, with the figures.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from tqdm import tqdm

from prunegym.agents import Budget, make_agent
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks import make_task

CRITERIA = ("magnitude", "lamp", "taylor", "hessian", "fpgm", "bn-scale")
COMPENSATIONS = (("none", "l2"), ("mean", "compensated"), ("optimal", "compensated"),
                 ("lsq", "lsq"))  # fmt: skip


def _score(result) -> tuple[float, float]:
    """``(metric, ci95)``: the held-out test return for episodic tasks, else the metric."""
    if result.test_metrics:
        name = result.metric_name
        return result.test_metrics[name], result.test_metrics[f"{name}_ci95"]
    return result.metric, 0.0


def _step_seconds(env, coefficients, repeats: int = 20) -> float:
    env.use_cache(False)
    times = []
    for repeat in range(repeats):
        started = time.perf_counter()
        env.step(coefficients * (0.9 if repeat % 2 else 1.0))
        times.append(time.perf_counter() - started)
    env.use_cache(True)
    env.reset()
    return float(np.median(times))


def _rows(task, targets, budget, bar) -> list[dict]:
    rows = []
    plain = PruneEnv(task)
    has_bn = any("BatchNorm" in type(m).__name__ for m in plain.model.modules())
    for criterion in CRITERIA:
        if criterion == "bn-scale" and not has_bn:
            continue
        row = {"row": f"torch-pruning {criterion}", "cells": {}, "step_seconds": None}
        for target in targets:
            plain.reset(seed=0, options={"target": target})
            result = make_agent("torch-pruning", importance=criterion, progress=False).run(plain)
            row["cells"][target] = (*_score(result), result.sparsity)
            bar.update(1)
        rows.append(row)
    for compensation, criterion in COMPENSATIONS:
        env = PruneEnv(task, compensation=compensation, criterion=criterion)
        for solver in ("uniform", "fd-momentum"):
            row = {"row": f"{solver} {criterion} + {compensation}", "cells": {}}
            for target in targets:
                env.reset(seed=0, options={"target": target})
                agent = make_agent(solver, progress=False, seed=0)
                result = agent.run(env, Budget(evaluations=budget))
                row["cells"][target] = (*_score(result), result.sparsity)
                if target == targets[len(targets) // 2]:
                    answer = np.asarray(result.coefficients)
                bar.update(1)
            row["step_seconds"] = _step_seconds(env, answer)
            rows.append(row)
    return rows


def _cell(value: float, ci: float, sparsity: float, target: float, digits: int) -> str:
    text = f"{value:.{digits}f}" + (f" ± {ci:.{digits}f}" if ci else "")
    return text if abs(sparsity - target) <= 0.01 else f"{text} (at {sparsity:.3f})"


def _goals(tables: dict, targets) -> list[str]:
    lines = []
    for name, rows in tables.items():
        baselines = [r for r in rows if r["row"].startswith("torch-pruning")]
        ours = [r for r in rows if r["row"].startswith("fd-momentum")]
        for target in targets:
            best_tp = max(baselines, key=lambda r: r["cells"][target][0])
            best_fd = max(ours, key=lambda r: r["cells"][target][0])
            gap = best_fd["cells"][target][0] - best_tp["cells"][target][0]
            lines.append(
                f"{name} at {target:.0%}: best FD momentum ({best_fd['row']}) "
                f"{best_fd['cells'][target][0]:.4g} vs best Torch-Pruning ({best_tp['row']}) "
                f"{best_tp['cells'][target][0]:.4g}: {gap:+.4g}"
            )
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", default="mnist-ae,tdmpc-pendulum,mnist-convnet")
    parser.add_argument("--targets", default="0.2,0.4,0.6,0.8")
    parser.add_argument("--budget", type=int, default=150, help="FD-momentum evaluations")
    parser.add_argument("--json", default="compensation_table.json", help="all rows, as JSON")
    args = parser.parse_args(argv)
    targets = [float(t) for t in args.targets.split(",")]
    names = args.tasks.split(",")
    started = time.perf_counter()
    tables = {}
    with tqdm(total=len(names) * len(targets) * (len(CRITERIA) + 8), desc="cells") as bar:
        for name in names:
            tables[name] = _rows(make_task(name), targets, args.budget, bar)
    for name, rows in tables.items():
        digits = 2 if name == "mnist-ae" else (1 if name == "tdmpc-pendulum" else 3)
        print(f"\n{name}\n")
        print("| row | " + " | ".join(f"{t:.0%}" for t in targets) + " | s/step |")
        print("|---|" + "---|" * (len(targets) + 1))
        for row in rows:
            cells = " | ".join(_cell(*row["cells"][t], t, digits) for t in targets)
            seconds = row.get("step_seconds")
            print(f"| {row['row']} | {cells} | {'' if seconds is None else f'{seconds:.4f}'} |")
    print("\nbest FD momentum against the best Torch-Pruning criterion:")
    for line in _goals(tables, targets):
        print(f"- {line}")
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    with open(args.json, "w") as handle:
        json.dump(tables, handle, indent=1)
    return tables


if __name__ == "__main__":
    main()
