"""Run benchmark cells as Ray tasks (``prunegym bench --backend ray``).

Without an address Ray starts a local instance on this machine (one worker per core); with
one (``ray://host:10001`` or ``host:6379``) the cells go to that cluster, whose workers need
prunegym installed. Each worker builds each task's environment once and reuses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict

from prunegym.agents import Result
from prunegym.bench.grid import BenchSpec, Cell, run_cell

_ENVS: dict = {}  # per worker process: task name -> PruneEnv


def _run_cell(spec_dict: dict, cell_dict: dict) -> str:
    """A cell's result as JSON, or the reason its baseline does not apply (not JSON)."""

    spec, cell = BenchSpec(**spec_dict), Cell(**cell_dict)
    key = (
        cell.task, spec.criterion, spec.compensation, spec.tolerance, spec.granularity,
        spec.precision, spec.bn_recalibration, spec.lsq_ridge, repr(spec.task_options),
    )  # fmt: skip
    cache = _ENVS.setdefault(key, {})
    outcome = run_cell(spec, cell, cache)
    return outcome if isinstance(outcome, str) else outcome.to_json()


def run_on_ray(spec, cells, address: str | None = None) -> Iterator:
    """Yield ``(cell, result)`` as the Ray tasks finish (in completion order)."""

    try:
        import ray
    except ImportError as error:
        raise ValueError("--backend ray needs Ray: pip install 'prunegym[ray]'") from error

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1)(_run_cell)
        pending = {remote.remote(spec.to_dict(), asdict(cell)): cell for cell in cells}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            cell = pending.pop(done[0])
            outcome = ray.get(done[0])
            yield cell, Result.from_json(outcome) if outcome.startswith("{") else outcome
    finally:
        if started_here:
            ray.shutdown()
