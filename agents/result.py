"""What every solver returns: budgets, single evaluations and the JSON-serialisable Result."""

from __future__ import annotations

import json
import math
import numbers
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Budget:
    """How much a solver may spend: environment evaluations and/or wall-clock seconds.

    ``Budget()`` (neither given) means "until the solver stops by itself", which only solvers
    that terminate on their own accept (grid search, FD momentum, the one-shot baselines).
    The clock never stops the first evaluation (or first batch): a run always has a result.
    """

    evaluations: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.evaluations is not None:
            if isinstance(self.evaluations, bool) or not isinstance(
                self.evaluations, int | np.integer
            ):
                raise ValueError(
                    f"budget evaluations must be a positive integer, got {self.evaluations!r}"
                )
            if self.evaluations < 1:
                raise ValueError(
                    f"budget evaluations must be a positive integer, got {self.evaluations}"
                )
        if self.seconds is not None:
            if isinstance(self.seconds, bool) or not isinstance(self.seconds, int | float):
                raise ValueError(f"budget seconds must be a positive number, got {self.seconds!r}")
            if not (math.isfinite(self.seconds) and self.seconds > 0):
                raise ValueError(f"budget seconds must be a positive number, got {self.seconds}")

    @property
    def unlimited(self) -> bool:
        return self.evaluations is None and self.seconds is None

    @classmethod
    def of(cls, value: Budget | int | dict | None) -> Budget:
        """Coerce ``None``, an int (evaluations), a dict or a Budget into a Budget."""
        if value is None:
            return cls()
        if isinstance(value, Budget):
            return value
        if isinstance(value, dict):
            unknown = set(value) - {"evaluations", "seconds"}
            if unknown:
                raise ValueError(f"unknown budget keys {sorted(unknown)}; use evaluations, seconds")
            return cls(**value)
        if isinstance(value, int | np.integer) and not isinstance(value, bool):
            return cls(evaluations=int(value))
        raise ValueError(
            "budget must be a number of evaluations (int), a dict or a prunegym.agents.Budget, "
            f"got {value!r}"
        )


@dataclass
class Evaluation:
    """One environment step as a solver sees it.

    Attributes:
        coefficients: ``(m,)`` float64, the action that was applied.
        reward: The environment's reward.
        metric: The task's primary metric (e.g. PSNR in dB).
        metrics: Every task metric.
        sparsity: Exact achieved sparsity, fraction 0–1.
        feasible: Sparsity within target ± tolerance (and the metric floor met, if any).
        counts: ``(m,)`` masked channels per group.
        seconds: Wall seconds from the start of the run to this evaluation.
    """

    coefficients: np.ndarray
    reward: float
    metric: float
    metrics: dict[str, float]
    sparsity: float
    feasible: bool
    counts: np.ndarray
    seconds: float = 0.0

    def record(self) -> dict[str, Any]:
        """The history entry: (coefficients, reward, metric, sparsity, seconds)."""
        return {
            "coefficients": [float(c) for c in self.coefficients],
            "reward": float(self.reward),
            "metric": float(self.metric),
            "sparsity": float(self.sparsity),
            "feasible": bool(self.feasible),
            "seconds": round(float(self.seconds), 6),
        }


@dataclass
class Result:
    """The outcome of ``agent.run(env, budget)``; ``to_json``/``from_json`` round-trip it.

    ``coefficients`` are the best ones evaluated: the feasible evaluation with the best metric,
    or, when none was feasible, the one with the highest reward (and ``feasible=False``).

    ``groups`` names the pruning group of each coefficient. ``cache_hits`` of
    ``cache_lookups`` evaluation requests were answered from a cache (the solver's or the
    environment's), without a forward pass. Provenance, so that anyone can
    re-check the result (``prunegym validate``): ``task_options`` rebuild the task
    (``make_task(task, **task_options)``), ``env_options`` the environment (penalty, probes,
    seed); ``weights_sha256`` is the hash of the dense weights the result was found on;
    ``solver_settings``, ``seed`` and ``budget`` rebuild the solver run; ``versions`` and
    ``machine`` say what it ran with, ``device`` (``cpu``, ``cuda:0``) and ``device_name``
    (the GPU's or the CPU's model) where the evaluations ran. ``sparsity`` is exact (zeroed over all
    parameters), ``sparsity_estimate`` the paper's eq. (1b).

    Tasks whose metric is a mean over random episodes (``task.test_episodes > 0``: TD-MPC)
    search on a few episodes, so ``metric`` is biased upwards by the selection; the chosen
    coefficients are then scored on held-out test episodes: ``test_metrics`` (``<metric>``,
    ``<metric>_ci95``: the half-width of its 95 % interval, ``episodes``, and the paired
    difference from the dense model on the same episodes, ``<metric>_vs_dense`` ±
    ``<metric>_vs_dense_ci95``), ``dense_test_metrics`` likewise for the dense model, and the
    per-episode values ``test_values`` and ``dense_test_values`` (same seeds, same order) for
    paired comparisons between results. All four are empty for deterministic tasks.

    ``costs`` (:meth:`PruneEnv.costs_of` of the coefficients): ``params_kept``, ``params_total``
    and, for channel pruning, ``macs`` per sample (convolutions and linear layers, counted from
    the masks), ``macs_dense`` and the ``channel_fractions`` removed per group; ``solve --out``
    adds the exported model's measured ``latency_ms`` and the dense ``latency_dense_ms``.
    """

    solver: str
    task: str
    target: float
    tolerance: float
    coefficients: list[float]
    metric: float
    metrics: dict[str, float]
    dense_metric: float
    sparsity: float
    feasible: bool
    evaluations: int
    wall_seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    metric_name: str = ""
    dense_metrics: dict[str, float] = field(default_factory=dict)
    criterion: str = ""
    compensation: str = ""
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    cache_hits: int = 0
    cache_lookups: int = 0
    sparsity_estimate: float = math.nan
    seed: int | None = None
    budget: dict[str, Any] = field(default_factory=dict)
    solver_settings: dict[str, Any] = field(default_factory=dict)
    task_options: dict[str, Any] = field(default_factory=dict)
    env_options: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    device: str = ""
    device_name: str = ""
    test_metrics: dict[str, float] = field(default_factory=dict)
    dense_test_metrics: dict[str, float] = field(default_factory=dict)
    test_values: list[float] = field(default_factory=list)
    dense_test_values: list[float] = field(default_factory=list)
    costs: dict[str, Any] = field(default_factory=dict)
    metric_scale: float | None = None  # the task's normalisation (None in older files)
    higher_is_better: bool | None = None  # the metric's direction (None in older files)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"not a prunegym Result: unknown keys {sorted(unknown)}")
        kinds = typing.get_type_hints(cls)
        for key, value in data.items():
            if not _is_a(value, kinds[key]):
                raise ValueError(f"not a prunegym Result: {key} is {value!r}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> Result:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Result:
        return cls.from_json(Path(path).read_text())


def _is_a(value, kind) -> bool:
    """Whether JSON data ``value`` fits the annotation ``kind`` (a float may be NaN, as the
    files allow; an int is a float; a bool is neither)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_a(value, arg) for arg in args)
    if kind is type(None):
        return value is None
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, numbers.Real)
    if kind in (int, str, bool):
        return isinstance(value, kind)
    if origin is list:
        return isinstance(value, list) and all(_is_a(item, args[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict) and all(_is_a(item, args[1]) for item in value.values())
    return True
