"""Compensation against Torch-Pruning's criteria, in one run (issue 17's table).

    python examples/compensation_table.py [--tasks mnist-ae,tdmpc-pendulum,mnist-convnet]
        [--targets 0.2,0.4,0.6,0.8] [--budget 150] [--json compensation_table.json]

For every task and target it runs:

- Torch-Pruning with each of its criteria (``magnitude``, ``lamp``, ``taylor``, ``hessian``,
  ``fpgm``, and ``bn-scale`` where the model has BatchNorm), global ranking, the channel ratio
  bisected onto the parameter target, no compensation;
- ``uniform`` and FD momentum (``--budget`` evaluations) with each compensation and its
  matching criterion: ``none`` + ``l2``, ``mean`` + ``compensated``, ``optimal`` +
  ``compensated``, ``lsq`` + ``lsq``; FD momentum both from ``c = 0`` (the paper) and warm
  started from the best Torch-Pruning criterion's allocation (``warm_start="torch-pruning"``, its
  evaluations charged to the same budget).

Cells are the task metric of the chosen model: PSNR (dB) for the autoencoder, top-1 for the
convnet, and for TD-MPC the return on the 100 held-out test episodes with its 95 % interval
(the solvers search on 8 other episodes). Sparsity is exact; a cell outside the ±1 % window
says where it landed. ``s/step`` is the median of 20 ``env.step`` calls of that environment
(cache off, two masks alternating). FD momentum gets ``--budget`` evaluations (default 150;
450 on TD-MPC, whose solves need about 400).

It ends with the issue's goals, met or missed. The best Torch-Pruning criterion and the best
FD-momentum row at each target are chosen by the metric the solvers saw (TD-MPC: the search
episodes) and compared on the test episodes, paired, with the 95 % interval of the
difference: a difference is claimed only where that interval excludes zero.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from tqdm import tqdm

from prunegym.agents import Budget, make_agent
from prunegym.bench.timing import median_step_seconds
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks import make_task
from prunegym.tasks.intervals import describe_difference, paired_difference

CRITERIA = ("magnitude", "lamp", "taylor", "hessian", "fpgm", "bn-scale")
COMPENSATIONS = (("none", "l2"), ("mean", "compensated"), ("optimal", "compensated"),
                 ("lsq", "lsq"))  # fmt: skip
BUDGETS = {"tdmpc-pendulum": 450}
SOLVERS = (  # row label, solver, options
    ("uniform", "uniform", {}),
    ("fd-momentum", "fd-momentum", {}),
    ("fd-momentum from torch-pruning", "fd-momentum", {"warm_start": "torch-pruning"}),
)


def _cell(result) -> dict:
    """What the table keeps of a result: the metric the solver saw, the test metric (the
    metric itself for deterministic tasks) with its interval and per-episode values, the
    normalised test score where there is one, and the exact sparsity."""
    name = result.metric_name
    test = result.test_metrics
    return {
        "search": result.metric,
        "test": test.get(name, result.metric),
        "ci": test.get(f"{name}_ci95", 0.0),
        "values": list(result.test_values),
        "normalized": test.get("normalized"),
        "normalized_ci": test.get("normalized_ci95"),
        "sparsity": result.sparsity,
        "feasible": result.feasible,
    }


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
            row["cells"][target] = _cell(result)
            bar.update(1)
        rows.append(row)
    for compensation, criterion in COMPENSATIONS:
        env = PruneEnv(task, compensation=compensation, criterion=criterion)
        for label, solver, options in SOLVERS:
            row = {"row": f"{label} {criterion} + {compensation}", "cells": {}}
            for target in targets:
                env.reset(seed=0, options={"target": target})
                agent = make_agent(solver, progress=False, seed=0, **options)
                result = agent.run(env, Budget(evaluations=budget))
                row["cells"][target] = _cell(result)
                if target == targets[len(targets) // 2]:
                    answer = np.asarray(result.coefficients)
                bar.update(1)
            row["step_seconds"] = median_step_seconds(env, answer)
            rows.append(row)
    return rows


def _text(cell: dict, target: float, digits: int) -> str:
    text = f"{cell['test']:.{digits}f}" + (f" ± {cell['ci']:.{digits}f}" if cell["ci"] else "")
    return text if abs(cell["sparsity"] - target) <= 0.01 else f"{text} (at {cell['sparsity']:.3f})"


def _best(rows: list[dict], target: float) -> dict:
    """The row with the best metric the solver saw, among those in the window (all rows if
    none is)."""
    inside = [r for r in rows if abs(r["cells"][target]["sparsity"] - target) <= 0.01] or rows
    return max(inside, key=lambda r: r["cells"][target]["search"])


def _goals(tables: dict, targets) -> list[str]:
    lines = []
    for name, rows in tables.items():
        baselines = [r for r in rows if r["row"].startswith("torch-pruning")]
        ours = [r for r in rows if r["row"].startswith("fd-momentum")]
        for target in targets:
            tp, fd = _best(baselines, target), _best(ours, target)
            first, second = fd["cells"][target], tp["cells"][target]
            if first["values"] and second["values"]:
                difference = describe_difference(
                    *paired_difference(first["values"], second["values"]), ".3g"
                )
            else:
                difference = f"{first['test'] - second['test']:+.3g}"
            line = (f"{name} at {target:.0%}: {fd['row']} {first['test']:.4g} (sparsity "
                    f"{first['sparsity']:.3f}) − {tp['row']} {second['test']:.4g} (sparsity "
                    f"{second['sparsity']:.3f}) = {difference}")  # fmt: skip
            if first["normalized"] is not None:
                line += (f"; normalised test score {first['normalized']:.3f} ± "
                         f"{first['normalized_ci']:.3f}")  # fmt: skip
            lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", default="mnist-ae,tdmpc-pendulum,mnist-convnet")
    parser.add_argument("--targets", default="0.2,0.4,0.6,0.8")
    parser.add_argument("--budget", type=int, default=None,
                        help="FD-momentum evaluations (default 150; 450 on TD-MPC)")  # fmt: skip
    parser.add_argument("--json", default="compensation_table.json", help="all rows, as JSON")
    args = parser.parse_args(argv)
    targets = [float(t) for t in args.targets.split(",")]
    names = args.tasks.split(",")
    started = time.perf_counter()
    tables = {}
    rows = len(CRITERIA) + len(COMPENSATIONS) * len(SOLVERS)
    with tqdm(total=len(names) * len(targets) * rows, desc="cells") as bar:
        for name in names:
            budget = args.budget or BUDGETS.get(name, 150)
            tables[name] = _rows(make_task(name), targets, budget, bar)
    for name, rows in tables.items():
        digits = 2 if name == "mnist-ae" else (1 if name == "tdmpc-pendulum" else 3)
        print(f"\n{name}\n")
        print("| row | " + " | ".join(f"{t:.0%}" for t in targets) + " | s/step |")
        print("|---|" + "---|" * (len(targets) + 1))
        for row in rows:
            cells = " | ".join(_text(row["cells"][t], t, digits) for t in targets)
            seconds = row.get("step_seconds")
            print(f"| {row['row']} | {cells} | {'' if seconds is None else f'{seconds:.4f}'} |")
    print("\nbest FD momentum − best Torch-Pruning criterion (chosen on what the solvers saw):")
    for line in _goals(tables, targets):
        print(f"- {line}")
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    with open(args.json, "w") as handle:
        json.dump(tables, handle, indent=1)
    return tables


if __name__ == "__main__":
    main()
