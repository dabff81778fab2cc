"""The benchmark grid: cells, running one cell, and running the rest of a grid with resume.

Each cell is one ``agent.run`` on a fresh environment state and writes one result file,
``OUT/cells/<task>/<solver>/target-<ρ>_seed-<s>.json``. A re-run skips every cell whose file
exists and loads as a result with the same settings, so an interrupted benchmark resumes where
it stopped.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from prunegym.agents import (
    Budget,
    NotApplicable,
    Result,
    agent_names,
    baseline_names,
    make_agent,
)
from prunegym.agents.specs import spec_folder_name
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks import make_task, task_names
from prunegym.tasks.devices import check_precision, resolve_device


@dataclass(frozen=True)
class Cell:
    """One run of the grid: a solver on a task at a sparsity target with a seed."""

    task: str
    solver: str
    target: float
    seed: int

    def path(self, out: Path) -> Path:
        """Where the cell's result file lives under the benchmark directory ``out``."""
        name = f"target-{self.target:g}_seed-{self.seed}.json"
        return out / "cells" / self.task / spec_folder_name(self.solver) / name


@dataclass
class BenchSpec:
    """What to run and how.

    Attributes:
        tasks, solvers, targets: The grid's axes (task names, solver names, fractions).
        seeds: Seeds ``0 .. seeds-1`` per (task, solver, target).
        tolerance: Sparsity window half-width ``ε``.
        criterion, compensation: The environment's ranking and bias compensation (``None``:
            the granularity's default).
        granularity: ``"channel"`` or ``"weight"``.
        budget, seconds: Per-cell evaluation and time budgets (``None``: each solver's own end).
        options: Solver options: ``{"*": {...}}`` for every solver, ``{solver: {...}}`` for one.
        task_options: Keyword arguments for each task, ``{task: {...}}``.
        device, precision: Where and at which precision the environments evaluate.
        bn_recalibration: Adaptive BatchNorm batches of every environment (0: off).
        lsq_ridge: Ridge of the ``lsq`` compensation and criterion (relative, > 0).
        baselines: Also run Torch-Pruning with each of its criteria (:func:`baseline_names`)
            at every task and target, once (seed 0: they are deterministic), with only the
            options given to them by name. A criterion that cannot rank a task's model (e.g.
            ``bn-scale`` without BatchNorm) is recorded as not applicable.
    """

    tasks: list[str]
    solvers: list[str]
    targets: list[float]
    seeds: int = 3
    tolerance: float = 0.01
    criterion: str | None = None
    compensation: str | None = None
    granularity: str = "channel"
    budget: int | None = None
    seconds: float | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    device: str = "cpu"
    precision: str = "fp32"
    bn_recalibration: int = 0
    lsq_ridge: float = 1e-2
    baselines: bool = True

    def __post_init__(self) -> None:
        resolve_device(self.device)  # an unavailable device fails before anything runs
        check_precision(self.precision)

        for kind, given, known in (
            ("task", self.tasks, task_names()),
            ("solver", self.solvers, agent_names() + baseline_names()),
            ("target", self.targets, None),
        ):
            if not given:
                raise ValueError(f"give at least one {kind}")
            named = [f"{item:g}" if kind == "target" else item for item in given]  # as cells are
            twice = [given[k] for k, name in enumerate(named) if name in named[:k]]
            if twice:
                raise ValueError(f"{kind} {twice[0]!r} is listed twice")
            if known is None:
                continue
            unknown = [name for name in given if name not in known and ":" not in name]
            if unknown:
                raise ValueError(f"unknown {kind} {unknown[0]!r}; choose from {', '.join(known)}")
        for target in self.targets:
            if not 0.0 < target < 0.95:
                raise ValueError(f"targets must lie in (0, 0.95), got {target}")
        if not 0.0 < self.tolerance < 1.0:
            raise ValueError(f"tolerance must lie in (0, 1), got {self.tolerance}")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValueError(f"seeds must be a positive integer, got {self.seeds!r}")
        if self.budget is not None or self.seconds is not None:
            Budget(evaluations=self.budget, seconds=self.seconds)  # validates both
        if not (math.isfinite(self.lsq_ridge) and self.lsq_ridge > 0):
            raise ValueError(f"lsq_ridge must be a finite number > 0, got {self.lsq_ridge!r}")
        stray = set(self.options) - {"*", *self.solvers, *self.baseline_solvers()}
        if stray:
            raise ValueError(f"options for solvers not in the grid: {sorted(stray)}")

    def baseline_solvers(self) -> list[str]:
        """The Torch-Pruning baselines this grid adds (none if ``baselines`` is off, or at
        weight granularity, where Torch-Pruning has nothing to remove)."""
        if not self.baselines or self.granularity != "channel":
            return []
        return [name for name in baseline_names() if name not in self.solvers]

    def cells(self) -> list[Cell]:
        """The grid's cells, then one cell per (task, baseline, target) with seed 0."""
        cells = [
            Cell(task, solver, float(target), seed)
            for task in self.tasks
            for solver in self.solvers
            for target in self.targets
            for seed in range(self.seeds)
        ]
        baselines = self.baseline_solvers()
        cells += [
            Cell(task, name, float(target), 0)
            for task in self.tasks
            for name in baselines
            for target in self.targets
        ]
        return cells

    def solver_options(self, solver: str) -> dict[str, Any]:
        """Options for ``solver``: those for every solver, then its own (a baseline added by
        the grid takes only its own)."""
        shared = {} if solver in self.baseline_solvers() else self.options.get("*", {})
        return {**shared, **self.options.get(solver, {})}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_cell(spec: BenchSpec, cell: Cell, env_cache: dict | None = None) -> Result | str:
    """Run one cell; returns its :class:`prunegym.agents.Result`, or for a baseline the grid
    added that does not apply to the task, the one-line reason.

    ``env_cache`` maps task names to built environments so that consecutive cells of a task
    reuse one (every run starts from ``reset``, which restores the dense model exactly).
    """

    cache = {} if env_cache is None else env_cache
    if cell.task not in cache:
        task = make_task(cell.task, device=spec.device, **spec.task_options.get(cell.task, {}))
        cache[cell.task] = PruneEnv(
            task,
            target=cell.target,
            tolerance=spec.tolerance,
            criterion=spec.criterion,
            compensation=spec.compensation,
            granularity=spec.granularity,
            precision=spec.precision,
            bn_recalibration=spec.bn_recalibration,
            lsq_ridge=spec.lsq_ridge,
        )
        # the learned policy's per-group features are built with the env, as its channel
        # scores are, so that no cell pays for them
        if cache[cell.task].granularity == "channel":
            cache[cell.task].group_features  # noqa: B018
    env = cache[cell.task]
    env.clear_cache()  # every cell pays for its own evaluations: seconds stay comparable
    env.reset(seed=cell.seed, options={"target": cell.target})
    options = spec.solver_options(cell.solver)
    agent = make_agent(cell.solver, progress=False, seed=cell.seed, **options)
    budget = None
    if spec.budget is not None or spec.seconds is not None:
        budget = Budget(evaluations=spec.budget, seconds=spec.seconds)
    try:
        result = agent.run(env, budget)
    except NotApplicable as error:
        if cell.solver not in spec.baseline_solvers():
            raise
        return str(error)
    finally:
        env.reset()
    return result


def solver_settings(spec: BenchSpec, solver: str) -> dict[str, Any]:
    """The settings a result of ``solver`` in this grid records (``Agent.settings``, as its
    result file holds them); building the solver checks its options, in one line."""
    agent = make_agent(solver, progress=False, **spec.solver_options(solver))
    return json.loads(json.dumps(agent.settings()))


def is_done(spec: BenchSpec, cell: Cell, out: Path, settings: dict[str, Any]) -> bool:
    """Whether the cell's file exists and holds a result of this cell with the spec's window,
    criterion, compensation, precision, adaptive BN, lsq ridge, device and budget, and with
    the solver ``settings`` (:func:`solver_settings`: every option, defaults included, and
    what the solver records of its inputs, such as the learned policy's file digest);
    otherwise the cell runs again."""

    path = cell.path(out)
    if cell.solver in spec.baseline_solvers() and not_applicable_path(path).is_file():
        return True
    if not path.is_file():
        return False
    try:
        result = Result.load(path)
    except (json.JSONDecodeError, TypeError, ValueError):
        return False  # a half-written or foreign file: run the cell again
    return (
        (result.task, result.solver, result.seed) == (cell.task, cell.solver, cell.seed)
        and abs(result.target - cell.target) < 1e-12
        and abs(result.tolerance - spec.tolerance) < 1e-12
        and spec.criterion in (None, result.criterion)
        and spec.compensation in (None, result.compensation)
        and result.env_options.get("granularity", "channel") == spec.granularity
        and result.env_options.get("precision", "fp32") == spec.precision
        and result.env_options.get("bn_recalibration", 0) == spec.bn_recalibration
        and result.env_options.get("lsq_ridge", 1e-2) == spec.lsq_ridge
        and (result.device or "cpu") == str(resolve_device(spec.device))
        and result.budget == {"evaluations": spec.budget, "seconds": spec.seconds}
        and result.solver_settings == settings
    )


def not_applicable_path(path: Path) -> Path:
    """Where a cell's one-line reason goes when its baseline does not apply to the task."""
    return path.with_suffix(".not-applicable")


def _write(result: Result | str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(result, str):
        not_applicable_path(path).write_text(result + "\n")
        path.unlink(missing_ok=True)  # never both a result and "does not apply"
        return
    not_applicable_path(path).unlink(missing_ok=True)
    partial = path.with_suffix(".json.partial")
    result.save(partial)
    partial.replace(path)  # never leave a half-written cell behind


def run_bench(
    spec: BenchSpec,
    out: str | Path,
    backend: str = "sequential",
    address: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every cell of ``spec`` not already done in ``out``; returns counts of cells.

    Args:
        backend: ``"sequential"`` (in this process, the default) or ``"ray"`` (one Ray task
            per cell; needs ``pip install prunegym[ray]``).
        address: Ray cluster address; ``None`` starts a local Ray on this machine.
    """
    if backend not in ("sequential", "ray"):
        raise ValueError(f"unknown backend {backend!r}; choose sequential or ray")
    cells = spec.cells()  # every solver is built once first: bad options fail before any cell
    settings = {solver: solver_settings(spec, solver) for solver in {c.solver for c in cells}}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(json.dumps(spec.to_dict(), indent=2) + "\n")
    todo = [cell for cell in cells if not is_done(spec, cell, out, settings[cell.solver])]
    bar = tqdm(
        total=len(cells), initial=len(cells) - len(todo), desc="bench", unit="cell",
        file=sys.stderr, disable=not progress, dynamic_ncols=True, mininterval=0.5,
    )  # fmt: skip
    try:
        if backend == "ray":
            from prunegym.bench.ray_backend import run_on_ray

            for cell, result in run_on_ray(spec, todo, address):
                _write(result, cell.path(out))
                bar.update(1)
        else:
            cache: dict = {}
            for cell in todo:
                bar.set_postfix_str(f"{cell.task} {cell.solver} {cell.target:g} s{cell.seed}")
                _write(run_cell(spec, cell, cache), cell.path(out))
                bar.update(1)
    finally:
        bar.close()
    return {"cells": len(cells), "ran": len(todo), "skipped": len(cells) - len(todo)}
