"""The one evaluation path: coefficient vectors in, step infos out.

``Evaluator.evaluate(rows)`` for a batch ``(K, m)`` of validated coefficients:

1. counts ``⌊c·n⌉`` per group, once for the batch;
2. the cache (keyed by the counts) answers masks seen before, repeats are evaluated once;
3. the strategy (sliced, stacked or sequential) evaluates the rest in one call (a single
   stacked candidate is masked in place and evaluated instead: the same numbers, no copies);
4. sparsity, feasibility and the reward (:class:`Reward`) are computed for the whole batch.

``PruneEnv.step`` is ``evaluate`` of one row, ``PruneEnv.evaluate_batch`` of K, and solvers
meter it through ``limit`` (no more than that many new evaluations).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from prunegym.envs.evaluation.calibration import CalibrationDistortion
from prunegym.envs.evaluation.reward import Reward
from prunegym.envs.evaluation.strategies import SequentialStrategy, make_strategy
from prunegym.pruning.channel.pruner import MAX_COEFFICIENT
from prunegym.pruning.protocol import Pruner
from prunegym.tasks.base import Task
from prunegym.tasks.devices import precision_context
from prunegym.tasks.options import is_count


class Evaluator:
    """Turns batches of coefficient vectors into step infos (see the module docstring).

    Args:
        task: The task; its ``evaluate`` must be deterministic for the cache to be valid.
        model: The environment's own model (masks are written into it by the strategies that
            need them).
        pruner: Its pruner.
        reward: The reward definition (its ``target`` is the window's centre).
        tolerance: The window half-width ``ε`` (fraction).
        batching: Strategy name (``auto``, ``sliced``, ``stacked``, ``sequential``).
        cache: Keep the metrics of every distinct mask.

    The dense model is evaluated once, here, before any mask is written; a sliced strategy is
    checked against it once.
    """

    def __init__(
        self,
        task: Task,
        model: nn.Module,
        pruner: Pruner,
        reward: Reward,
        tolerance: float,
        batching: str = "auto",
        cache: bool = True,
        precision: str = "fp32",
        batch_memory_mb: float | None = None,
    ) -> None:
        self.task, self.model, self.pruner = task, model, pruner
        self.precision, self.device = precision, task.device
        with self.precise():
            self.dense_metrics = dict(task.evaluate(model))
            if task.metric not in self.dense_metrics:
                raise ValueError(
                    f"task {task.name!r}: evaluate() returned {sorted(self.dense_metrics)}, "
                    f"without its metric {task.metric!r}"
                )
            self.strategy = make_strategy(batching, task, model, pruner, batch_memory_mb, precision)
        self.reward = replace(reward, dense_metric=float(self.dense_metrics[task.metric]))
        self.tolerance = tolerance
        # One candidate alone costs least masked in place (stacking copies every parameter);
        # the sliced chain writes nothing and stays the faster path even for one, and the
        # batched forward keeps single candidates on the same numbers as batches (closed loops
        # turn last-bit differences into other returns).
        self.single = self.strategy
        if self.strategy.name == "stacked":
            self.single = SequentialStrategy(task, model, pruner)
        if self.strategy.name == "sliced":
            self._check_chain()
        self._cache: dict[bytes, dict[str, float]] | None = None
        self.use_cache(cache)
        self._dense_test_values: np.ndarray | None = None
        batched = self.strategy.name == "batched"  # a GPU's default: K masks per forward
        self._calibration = CalibrationDistortion(
            task, model, pruner, self.precise, batch_memory_mb, batched
        )

    def precise(self) -> contextlib.AbstractContextManager:
        """The context every evaluation runs in: no gradients, at the environment's precision
        (plain ``no_grad`` for fp32 on the CPU, where there is nothing to set: a step's
        overhead stays as small as it was)."""
        if self.precision == "fp32" and self.device.type == "cpu":
            return torch.no_grad()
        return self._precise()

    @contextlib.contextmanager
    def _precise(self) -> Iterator[None]:
        with torch.no_grad(), precision_context(self.precision, self.device):
            yield

    def _check_chain(self) -> None:
        """Refuse a sliced chain that does not reproduce ``evaluate`` on the dense model. It
        costs the chain's layers after the first: the first layer's dense output, computed
        here, serves every later candidate."""
        zero = np.zeros((1, len(self.pruner.channels)), dtype=np.int64)
        with self.precise():
            found = self.strategy(zero)[0]
        for key, value in self.dense_metrics.items():
            if key in found and not math.isclose(found[key], value, rel_tol=1e-4, abs_tol=1e-6):
                raise RuntimeError(
                    f"task {self.task.name!r}: its evaluation_chain() gives {key}="
                    f"{found[key]!r} for the dense model, evaluate() gives {value!r} "
                    "(prunegym.check_task(task) tells more)"
                )

    # -- validation -----------------------------------------------------------------------------
    def check(self, actions, single: bool = False) -> np.ndarray:
        """Validate one action ``(m,)`` (``single``) or a batch ``(K, m)``; returns float64
        ``(K, m)`` (``K = 1`` for one action). Raises ``ValueError`` naming the problem."""
        size = len(self.pruner.channels)
        name, shape = ("action", f"({size},)") if single else ("actions", f"(K, {size})")
        try:
            raw = np.asarray(actions)
            if raw.dtype.kind not in "iuf":  # not strings, complex numbers, objects or bools
                raise TypeError(f"got {raw.dtype} values")
            rows = raw.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name} must be real numbers with shape {shape}: {error}") from error
        fits = rows.shape == (size,) if single else rows.ndim == 2 and rows.shape[1] == size
        if not fits:
            what = "one coefficient per pruning group" if single else "one row per candidate"
            raise ValueError(f"{name} must have shape {shape}, {what}; got shape {rows.shape}")
        rows = rows.reshape(-1, size)
        bad = ~(np.isfinite(rows) & (rows >= 0.0) & (rows <= MAX_COEFFICIENT))
        if bad.any():
            k = int(np.flatnonzero(bad.any(axis=1))[0])
            offending = ", ".join(
                f"action[{i}]={rows[k, i].item()!r}" for i in np.flatnonzero(bad[k])
            )
            message = (
                f"action entries must be finite and within [0, {MAX_COEFFICIENT}]; "
                f"offending: {offending}"
            )
            raise ValueError(message if single else f"candidate {k}: {message}")
        return rows

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(self, rows: np.ndarray, limit: int | None = None) -> list[dict[str, Any]]:
        """Step infos of validated coefficients ``rows`` ``(K, m)``, in order. With ``limit``,
        at most that many masks not in the cache are evaluated: the infos of the longest prefix
        of ``rows`` that fits are returned (fewer than K when the limit cuts in)."""
        if limit is not None and not is_count(limit, 0):
            raise ValueError(f"limit must be None or an integer >= 0, got {limit!r}")
        counts = self.pruner.counts(rows)
        keys = [row.tobytes() for row in counts]
        known = self._cache if self._cache is not None else {}
        missing: dict[bytes, int] = {}  # distinct keys to evaluate -> first row
        for k, key in enumerate(keys):
            if key not in known and key not in missing:
                if limit is not None and len(missing) >= limit:
                    rows, counts, keys = rows[:k], counts[:k], keys[:k]
                    break
                missing[key] = k
        fresh: dict[bytes, dict[str, float]] = {}
        if missing:
            strategy = self.single if len(missing) == 1 else self.strategy
            with self.precise():
                found = strategy(counts[list(missing.values())])
            fresh = dict(zip(missing, found, strict=True))
        if self._cache is not None:
            self._cache.update(fresh)
        metrics = [known.get(key) or fresh[key] for key in keys]
        hits = [key not in missing or missing[key] != k for k, key in enumerate(keys)]
        return self.infos(rows, counts, metrics, hits)

    def infos(self, rows, counts, metrics: list[dict], hits: list[bool]) -> list[dict[str, Any]]:
        """The ``info`` dict of each candidate; sparsity and its estimate counted for the whole
        batch at once."""
        total = self.pruner.total_parameters
        zeroed = np.asarray(self.pruner.zeroed(counts), dtype=np.int64).reshape(-1).tolist()
        estimate = np.asarray(self.pruner.sparsity_estimate(rows), dtype=np.float64)
        estimate = estimate.reshape(-1).tolist()
        target, tolerance, name = self.target, self.tolerance, self.task.metric
        costs = self.costs(counts)
        infos = []
        for k, found in enumerate(metrics):
            self.lookups += 1
            self.hits += bool(hits[k])
            metric, sparsity = float(found[name]), zeroed[k] / total
            infos.append({
                "metric": metric,
                **{key: float(value) for key, value in found.items()},
                "dense_metric": self.reward.dense_metric,
                "sparsity": sparsity,
                "sparsity_estimate": estimate[k],
                "target": target,
                "tolerance": tolerance,
                "feasible": abs(sparsity - target) <= tolerance,
                "params_kept": total - zeroed[k],
                "params_total": total,
                "pruned_channels": counts[k].tolist(),
                **costs[k],
                "reward": self.reward.scalar(metric, sparsity),
                "cache_hit": bool(hits[k]),
                "cache_hit_rate": self.hits / self.lookups,
            })  # fmt: skip
        return infos

    def costs(self, counts: np.ndarray) -> list[dict[str, Any]]:
        """Per row of ``counts`` ``(K, m)``, for channel pruning: ``macs`` (per sample, of the
        convolutions and linear layers), ``macs_dense`` and ``channel_fractions`` (removed per
        group); empty dicts for weight pruning, which removes no computation."""
        if self.pruner.granularity != "channel":
            return [{} for _ in counts]
        macs = np.asarray(self.pruner.macs(counts), dtype=np.int64).reshape(-1).tolist()
        fractions = (np.asarray(counts) / self.pruner.channels).tolist()
        dense = int(self.pruner.total_macs)
        return [
            {"macs": m, "macs_dense": dense, "channel_fractions": f}
            for m, f in zip(macs, fractions, strict=True)
        ]

    def dense_info(self) -> dict[str, Any]:
        """The info of ``c = 0`` (what ``reset`` returns); not counted as a lookup."""
        size = len(self.pruner.channels)
        info = self.infos(
            np.zeros((1, size)), np.zeros((1, size), dtype=np.int64), [self.dense_metrics], [True]
        )[0]
        self.lookups -= 1
        self.hits -= 1
        for key in ("cache_hit", "cache_hit_rate"):
            del info[key]
        return info

    def cached(self, coefficients: np.ndarray) -> bool:
        """Whether the mask of ``coefficients`` ``(m,)`` would be answered by the cache."""
        return self._cache is not None and self.pruner.counts(coefficients).tobytes() in self._cache

    # -- the window and the cache ---------------------------------------------------------------
    @property
    def target(self) -> float:
        return self.reward.target

    @target.setter
    def target(self, value: float) -> None:
        self.reward = replace(self.reward, target=float(value))

    def use_cache(self, enabled: bool = True) -> None:
        """Turn the evaluation cache on (empty) or off."""
        self._cache = {} if enabled else None
        self.clear_cache()

    def clear_cache(self) -> None:
        """Forget every cached evaluation and reset the hit counters."""
        if self._cache is not None:
            self._cache.clear()
        self.hits, self.lookups = 0, 0

    def copy_state(self) -> dict:
        """The cache (a new dict), its counters and the dense model's test values, for a copy
        of the environment (:meth:`restore_state`)."""
        return {
            "_cache": None if self._cache is None else dict(self._cache),
            "hits": self.hits, "lookups": self.lookups,
            "_dense_test_values": self._dense_test_values,
        }  # fmt: skip

    def restore_state(self, state: dict) -> None:
        self.__dict__.update(state)

    # -- held-out test episodes -----------------------------------------------------------------
    def test_values(self, counts: np.ndarray | None = None, model: nn.Module | None = None):
        """Per-episode test metrics ``(test_episodes,)`` float64 of the model masked at
        ``counts`` (or of ``model``, pruned elsewhere); the dense model's are computed once."""
        if not self.task.test_episodes:
            raise ValueError(
                f"task {self.task.name!r} has no test episodes: its metric is deterministic"
            )
        if model is not None:
            with self.precise():
                return np.asarray(self.task.test_episode_metrics(model), dtype=np.float64)
        dense = counts is None or not np.any(counts)
        if dense and self._dense_test_values is not None:
            return self._dense_test_values
        self.pruner.apply_counts(np.zeros(len(self.pruner.channels), np.int64) if dense else counts)
        with self.precise():
            values = np.asarray(self.task.test_episode_metrics(self.model), dtype=np.float64)
        if dense:
            self._dense_test_values = values
        return values

    # -- calibration distortion ------------------------------------------------------------------
    def calibration_distortion(self, counts: np.ndarray) -> np.ndarray:
        """``(K,)`` float64: for each row of ``counts`` ``(K, m)``, how far the masked (and
        compensated) model's outputs are from the dense model's on the task's calibration
        batches (``task.forward``; by its ``output_kind``), averaged over the batches
        (:class:`~prunegym.envs.evaluation.calibration.CalibrationDistortion`: distinct masks
        once each, K per forward where the strategy is ``batched``). No metric is evaluated; the
        dense outputs are computed once and kept (on the task's device)."""
        return self._calibration(counts)
