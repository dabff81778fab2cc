"""Summaries of a benchmark directory: a CSV of every cell, a markdown report with mean ± std
over seeds, a plot of metric against sparsity and the coefficient bars, per task."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from prunegym.agents import Result, baseline_names
from prunegym.bench import anytime
from prunegym.bench.grid import not_applicable_path
from prunegym.results import plots
from prunegym.tasks.intervals import describe_difference, paired_difference

CSV_COLUMNS = [
    "task", "solver", "target", "seed", "metric_name", "metric", "dense_metric", "sparsity",
    "sparsity_estimate", "feasible", "evaluations", "wall_seconds", "coefficients",
    "test_metric", "test_metric_ci95", "test_episodes",
]  # fmt: skip


def load_cells(spec, out: Path) -> list:
    """The results of the spec's cells that exist in ``out`` (in grid order)."""

    return [Result.load(cell.path(out)) for cell in spec.cells() if cell.path(out).is_file()]


def not_applicable(spec, out: Path) -> dict[tuple[str, str], str]:
    """``(task, solver) -> reason`` for the baselines that do not apply to a task."""
    reasons = {}
    for cell in spec.cells():
        path = not_applicable_path(cell.path(out))
        if path.is_file():
            reasons[(cell.task, cell.solver)] = path.read_text().strip()
    return reasons


def best_baseline_cells(rows: list[dict], targets: list[float], higher: bool) -> list[str]:
    """Per target, the best Torch-Pruning criterion's metric among those in the window, as
    ``"<metric> (<criterion>)"`` (empty where none ran or none landed in the window)."""
    sign = 1.0 if higher else -1.0
    cells = []
    for target in targets:
        found = [
            r
            for r in rows
            if r["target"] == target and r["solver"] in baseline_names() and r["feasible"]
        ]
        if not found:
            cells.append("")
            continue
        best = max(found, key=lambda r: sign * r["metric_mean"])
        cells.append(f"{best['metric_mean']:.4g} ({best['solver'].removeprefix('torch-pruning-')})")
    return cells


def summarise(results: list) -> list[dict]:
    """One row per (task, solver, target): mean and std over seeds of metric, sparsity,
    evaluations and seconds, and the number of feasible seeds."""
    buckets = defaultdict(list)
    for result in results:
        buckets[(result.task, result.solver, result.target)].append(result)
    rows = []
    for (task, solver, target), runs in buckets.items():
        metric = np.array([r.metric for r in runs], dtype=np.float64)
        rows.append({
            "task": task, "solver": solver, "target": target, "seeds": len(runs),
            "metric_name": runs[0].metric_name, "dense_metric": runs[0].dense_metric,
            "metric_mean": float(metric.mean()), "metric_std": float(metric.std()),
            "sparsity_mean": float(np.mean([r.sparsity for r in runs])),
            "feasible": sum(r.feasible for r in runs),
            "evaluations_mean": float(np.mean([r.evaluations for r in runs])),
            "seconds_mean": float(np.mean([r.wall_seconds for r in runs])),
        })  # fmt: skip
    return rows


def _write_csv(results: list, path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, CSV_COLUMNS)
        writer.writeheader()
        for r in results:
            writer.writerow({
                "task": r.task, "solver": r.solver, "target": r.target, "seed": r.seed,
                "metric_name": r.metric_name, "metric": r.metric, "dense_metric": r.dense_metric,
                "sparsity": r.sparsity, "sparsity_estimate": r.sparsity_estimate,
                "feasible": r.feasible, "evaluations": r.evaluations,
                "wall_seconds": round(r.wall_seconds, 4),
                "coefficients": " ".join(f"{c:.4f}" for c in r.coefficients),
                "test_metric": r.test_metrics.get(r.metric_name, ""),
                "test_metric_ci95": r.test_metrics.get(f"{r.metric_name}_ci95", ""),
                "test_episodes": int(r.test_metrics.get("episodes", 0)) or "",
            })  # fmt: skip


def _markdown(rows: list[dict], results: list, spec, command: str, skipped: dict) -> str:
    lines = ["# prunegym benchmark", ""]
    if command:
        lines += ["```", command, "```", ""]
    lines += [
        f"Seeds per cell: {spec.seeds}. Window ±{spec.tolerance:g}. Granularity "
        f"{spec.granularity}, ranking {spec.criterion or 'default'}, compensation "
        f"{spec.compensation or 'default'}. Cells show the mean ± std over seeds of the best "
        "result each solver found; `*` marks cells where some seed missed the sparsity window.",
        "Solvers without randomness (grid, fd-momentum, norm, uniform, lamp, torch-pruning) give "
        "the same result for every seed, so their std is 0.",
        *(
            [
                "`torch-pruning-<criterion>` rows are what you would use instead: Torch-Pruning "
                "with each of its criteria, global ranking, no compensation, run once (seed 0)."
            ]
            if spec.baseline_solvers()
            else []
        ),
        "",
    ]
    for task in dict.fromkeys(row["task"] for row in rows):
        task_rows = [row for row in rows if row["task"] == task]
        targets = sorted({row["target"] for row in task_rows})
        name = task_rows[0]["metric_name"]
        higher = anytime.higher_is_better(next(r for r in results if r.task == task))
        better = "higher" if higher else "lower"
        dense = task_rows[0]["dense_metric"]
        lines += [f"## {task}: {name}, {better} is better (dense {dense:.4g})", ""]
        lines += ["| solver | " + " | ".join(f"{t:.0%}" for t in targets) + " |"]
        lines += ["|---|" + "---|" * len(targets)]
        for solver in dict.fromkeys(row["solver"] for row in task_rows):
            cells = []
            for target in targets:
                match = [r for r in task_rows if r["solver"] == solver and r["target"] == target]
                if not match:
                    cells.append("")
                    continue
                r = match[0]
                star = "" if r["feasible"] == r["seeds"] else "*"
                cells.append(f"{r['metric_mean']:.4g} ± {r['metric_std']:.2g}{star}")
            lines.append(f"| {solver} | " + " | ".join(cells) + " |")
        if any(row["solver"] in baseline_names() for row in task_rows):
            best = best_baseline_cells(task_rows, targets, higher)
            lines.append("| **best Torch-Pruning criterion** | " + " | ".join(best) + " |")
        lines += [
            f"\n`{solver}` does not apply: {reason}"
            for (at, solver), reason in skipped.items()
            if at == task
        ]
        lines += ["", "| solver | target | sparsity | feasible | evaluations | seconds |"]
        lines += ["|---|---|---|---|---|---|"]
        for r in task_rows:
            lines.append(
                f"| {r['solver']} | {r['target']:.0%} | {r['sparsity_mean']:.2%} | "
                f"{r['feasible']}/{r['seeds']} | {r['evaluations_mean']:.0f} | "
                f"{r['seconds_mean']:.2f} |"
            )
        lines += _test_section([r for r in results if r.task == task], higher)
        lines += ["", f"![{name} against sparsity](metric_vs_sparsity_{task}.png)", ""]
        lines += _compute_section([r for r in results if r.task == task], task)
    return "\n".join(lines) + "\n"


def _compute_section(results: list, task: str) -> list[str]:
    """Quality against compute (:mod:`prunegym.bench.anytime`): the area under each solver's
    best-so-far quality against evaluations and against seconds, and its final quality."""
    lines = [
        "### Quality against compute", "",
        "Quality: 1 at the dense metric, 0 a full metric scale worse (or no result in the window "
        "yet). Area: the mean of the best quality so far over the evaluations (seconds) of the "
        "longest run at each target (at least one second), averaged over targets and seeds; a "
        "solver that stopped keeps its final best.", "",
        "| solver | area by evaluations | area by seconds | final quality |",
        "|---|---|---|---|",
    ]  # fmt: skip
    for row in anytime.areas(results):
        lines.append(
            f"| {row['solver']} | {row['by_evaluations']:.3f} | {row['by_seconds']:.3f} | "
            f"{row['final']:.3f} |"
        )
    return [*lines, "", f"![quality against compute](quality_vs_compute_{task}.png)", ""]


def _test_section(results: list, higher_is_better: bool) -> list[str]:
    """For tasks whose metric is a mean over random episodes: every cell's result on the
    held-out test episodes, its paired difference from the dense model and from the best
    solver at its target and seed (same episodes), stated only where the interval excludes
    zero."""
    runs = [r for r in results if r.test_values]
    if not runs:
        return []
    name = runs[0].metric_name
    sign = 1.0 if higher_is_better else -1.0
    lines = [
        "", f"### Held-out test episodes ({int(runs[0].test_metrics['episodes'])} per result)",
        "", f"The search metric above is the best of many candidates on the same few episodes, "
        f"so it is biased upwards. Here each result's {name} on held-out episodes, with its "
        "95 % interval, and paired differences on the same episodes; a difference is stated "
        "only where its interval excludes zero.", "",
        f"| solver | target | seed | test {name} | vs dense | vs the best at this target |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for key in sorted({(r.target, r.seed) for r in runs}):
        at = [r for r in runs if (r.target, r.seed) == key]
        best = max(at, key=lambda r: sign * r.test_metrics[name])
        for r in at:
            test = r.test_metrics
            versus = describe_difference(
                test[f"{name}_vs_dense"], test[f"{name}_vs_dense_ci95"], ".3g"
            )
            if r is best:
                against_best = "best"
            else:
                against_best = describe_difference(
                    *paired_difference(r.test_values, best.test_values), ".3g"
                )
            lines.append(
                f"| {r.solver} | {r.target:.0%} | {r.seed} | {test[name]:.4g} ± "
                f"{test[name + '_ci95']:.2g} | {versus} | {against_best} |"
            )
    return lines


def _plots(results: list, rows: list[dict], out: Path) -> list[Path]:
    written = []
    for task in dict.fromkeys(row["task"] for row in rows):
        task_rows = [row for row in rows if row["task"] == task]
        lines = defaultdict(list)
        for r in task_rows:
            lines[r["solver"]].append((r["sparsity_mean"], r["metric_mean"], r["metric_std"]))
        written.append(plots.save_metric_vs_sparsity(
            out / f"metric_vs_sparsity_{task}.png", lines, task_rows[0]["metric_name"],
            dense=task_rows[0]["dense_metric"], title=f"{task}: best result per solver",
        ))  # fmt: skip
        written.append(plots.save_quality_vs_compute(
            out / f"quality_vs_compute_{task}.png", anytime.curves(results, task),
            title=f"{task}: best quality so far, mean over targets and seeds",
        ))  # fmt: skip
        charts: dict = defaultdict(dict)
        first_seed = min(r.seed for r in results if r.task == task)
        mine = [r for r in results if r.task == task and r.seed == first_seed]
        for r in mine:
            charts[r.solver][f"{r.target:.0%}"] = r.coefficients
        written.append(plots.save_coefficient_bars(
            out / f"coefficients_{task}.png", charts, mine[0].groups,
            title=f"{task}: coefficients per group (seed {first_seed})",
        ))  # fmt: skip
    return written


def write_reports(spec, out: str | Path, command: str = "") -> dict[str, Path]:
    """Write ``results.csv``, ``report.md`` and the plots for the spec's finished cells."""
    out = Path(out)
    results = load_cells(spec, out)
    if not results:
        raise ValueError(f"no finished cells in {out}")
    rows = summarise(results)
    written = {"csv": out / "results.csv", "report": out / "report.md"}
    _write_csv(results, written["csv"])
    markdown = _markdown(rows, results, spec, command, not_applicable(spec, out))
    written["report"].write_text(markdown)
    for path in _plots(results, rows, out):
        written[path.stem] = path
    return written
