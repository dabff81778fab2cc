"""PruneEnv: structured pruning of a pretrained model as a Gymnasium environment."""

from __future__ import annotations

import copy
import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from prunegym.pruning import MAX_COEFFICIENT, SoftPruner
from prunegym.tasks import Task, make_task
from prunegym.tasks.base import weights_sha256

MAX_NORMALISED_METRIC = 10.0
GRANULARITIES = ("channel", "weight")
DEFAULT_CRITERION = {"channel": "compensated", "weight": "elimination-compensation"}
DEFAULT_COMPENSATION = {"channel": "mean", "weight": "optimal"}


class PruneEnv(gym.Env[np.ndarray, np.ndarray]):
    """
    ## Description
    Soft-coefficient, component-aware structured pruning of a task's pretrained model
    (Sundaram et al., §III–IV). The model's Torch-Pruning dependency groups are found per
    component (encoder, decoder, ...) plus coupling groups between components. Each group ``i``
    gets a coefficient ``c_i``: the fraction of its ``n_i`` channels to remove. A step ranks the
    channels of every group by an importance criterion, masks the ``⌊c_i·n_i⌉`` least important
    ones by zeroing their parameters, applies bias compensation and evaluates the task. Tasks
    whose model is a chain of Linear layers (the MNIST autoencoder) are evaluated on the
    physically sliced model, with the first layer's output computed once; the metrics equal
    those of the masked model to float tolerance (``batching="sequential"`` evaluates the masked
    model itself). :meth:`evaluate_batch` evaluates many candidates at once.

    ## Action Space
    ``Box(0, 0.95, (m,), float32)``, one coefficient per pruning group, ordered as
    ``env.unwrapped.groups`` (component-specific groups first, coupling groups last).

    | Num | Action | Min | Max |
    |-----|--------|-----|-----|
    | i | fraction ``c_i`` of group ``i``'s channels removed | 0.0 | 0.95 |

    The upper limit 0.95 keeps every group connected. NaN, infinite, out-of-range or
    wrongly-shaped actions raise ``ValueError`` and leave the model as it was.

    ## Observation Space
    ``Box(0, 0.95, (m,), float32)``: the coefficients currently applied.

    ## Rewards
    ``reward = clip(σ·(metric − dense_metric) / scale, −10, 10) − μ·(sparsity − target)²``
    where ``σ`` is +1 if a higher metric is better and −1 otherwise, ``scale`` is the task's
    ``metric_scale`` (10 dB for the MNIST autoencoder), ``sparsity`` the exact achieved
    sparsity and ``μ = penalty`` (default 100: a 10-point miss of the target costs as much as
    ``scale``). The dense model scores 0 on the metric term.

    ## Starting State
    ``c = 0``: the dense model, restored bit for bit. ``reset(options={"target": ρ})`` also
    sets a new sparsity target.

    ## Episode Truncation
    Never terminated; the registered ids truncate after 50 steps.

    ## Arguments
    - ``task``: a :class:`prunegym.Task` or a task name (``"mnist-ae"``, ``"toy"``).
    - ``target``: sparsity target ``ρ`` (fraction of ``‖θ‖₀``), default 0.2.
    - ``tolerance``: window half-width ``ε``; ``info["feasible"]`` is ``|s − ρ| ≤ ε``.
    - ``granularity``: ``"channel"`` (default: structured groups as above) or ``"weight"``
      (unstructured: one group per ``nn.Linear`` layer, ``c_i`` the fraction of its weights
      zeroed, ranked by a weight-level criterion, with a bias shift per removed weight).
    - ``criterion``: channels: ``l1``, ``l2``, ``random``, ``taylor`` or ``compensated``
      (default); weights: ``magnitude``, ``gradient-magnitude``, ``random``,
      ``elimination-compensation`` (default) or ``nonlinear``.
    - ``compensation``: channels: ``none``, ``mean`` (default) or ``optimal``; weights:
      ``none``, ``mean`` (``W_ij E[z_j]``) or ``optimal`` (default, eq. 7).
    - ``penalty``: ``μ`` of the sparsity penalty.
    - ``probes``: Rademacher probes per calibration batch for ``optimal`` compensation.
    - ``seed``: seed of the ``random`` criterion and of the probes.
    - ``cache``: evaluate each distinct mask once (default ``True``); a step whose masked
      channel counts were seen before reuses the metrics (the masks are still applied).
      ``info["cache_hit"]`` and ``info["cache_hit_rate"]`` report it; ``reset(seed=...)``
      clears it, so seeded runs repeat exactly. Turn it off for tasks whose evaluation is
      random.
    - ``batching``: how :meth:`evaluate_batch` evaluates many candidates: ``"auto"``
      (default: the fastest the task supports), ``"sliced"`` (physically sliced layer chains
      sharing common prefixes), ``"stacked"`` (the task's ``evaluate_stacked``) or
      ``"sequential"``. ``env.unwrapped.batch_strategy`` names the one in use.

    ```python
    import gymnasium as gym
    import prunegym  # registers the ids
    env = gym.make("prunegym/MNISTAutoencoder-v0", target=0.2, criterion="compensated")
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(np.full(5, 0.2, np.float32))
    ```

    ## Attributes for solvers
    ``groups``, ``channels`` (``n_i``), ``dense_metrics``, ``dense_metric``,
    ``dense_group_norms`` (mean per-channel L2 norm per group), ``max_sparsity`` (the exact
    sparsity of ``c = 0.95·1``), ``target``, ``tolerance``, ``penalty``, ``options`` (penalty,
    probes, seed), ``weights_sha256`` (hash of the dense weights), and the methods
    ``sparsity_of(c)``, ``sparsity_estimate_of(c)``, ``pruned_counts(c)`` and
    ``reward(metric, sparsity)``, none of which evaluate the model. For tasks whose metric
    is a mean over random episodes, :meth:`test_evaluation` scores coefficients on the task's
    held-out test episodes (95 % intervals, paired differences from the dense model).

    ## Version History
    - v0: initial version.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        task: Task | str,
        target: float = 0.2,
        tolerance: float = 0.01,
        criterion: str | None = None,
        compensation: str | None = None,
        penalty: float = 100.0,
        probes: int = 8,
        seed: int = 0,
        granularity: str = "channel",
        cache: bool = True,
        batching: str = "auto",
    ) -> None:
        self.task = make_task(task) if isinstance(task, str) else task
        if not isinstance(self.task, Task):
            raise TypeError(f"task must be a prunegym.Task or a task name, got {type(task)}")
        self.target = _check_fraction("target", target)
        self.tolerance = _check_fraction("tolerance", tolerance)
        if not (math.isfinite(penalty) and penalty >= 0):
            raise ValueError(f"penalty must be a finite number >= 0, got {penalty!r}")
        self.penalty = float(penalty)
        # The environment owns its model: a deep copy, so no caller's model is ever touched.
        self.model = copy.deepcopy(self.task.build_model()).eval()
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
        self.granularity = granularity
        criterion = criterion or DEFAULT_CRITERION[granularity]
        compensation = compensation or DEFAULT_COMPENSATION[granularity]
        if granularity == "weight":
            from prunegym.pruning.weight.pruner import WeightPruner

            self.pruner = WeightPruner(
                self.model,
                self.task.components(self.model),
                self.task.calibration_batches,
                self.task.forward,
                loss=self.task.loss,
                criterion=criterion,
                compensation=compensation,
                seed=seed,
            )
        else:
            self.pruner = SoftPruner(
                self.model,
                self.task.components(self.model),
                self.task.example_inputs,
                self.task.calibration_batches,
                self.task.forward,
                loss=self.task.loss,
                output_layers=self.task.output_layers(self.model),
                criterion=criterion,
                compensation=compensation,
                probes=probes,
                seed=seed,
            )
        self.criterion, self.compensation = criterion, compensation
        from prunegym.envs.evaluation.strategies import STRATEGIES

        if batching not in STRATEGIES:
            raise ValueError(f"batching must be one of {STRATEGIES}, got {batching!r}")
        self.batching = batching
        self._batch_evaluator = None  # built on the first evaluate_batch
        self.options = {
            "penalty": self.penalty, "probes": int(probes), "seed": int(seed),
            "granularity": granularity,
        }  # fmt: skip
        self.weights_sha256 = weights_sha256(self.model)  # the dense weights, for result files
        self.groups = self.pruner.groups
        self.channels = self.pruner.channels.copy()
        # Mean per-channel L2 norm of each group in the dense model (the norm-based baseline).
        self.dense_group_norms = self.pruner.group_norms()
        # Evaluation cache: masked-channel counts -> task metrics. The criterion, compensation
        # and task are fixed per environment, so the counts alone identify the masked model.
        self._cache: dict[bytes, dict[str, float]] | None = {} if cache else None
        self.cache_hits, self.cache_lookups = 0, 0
        self.max_sparsity = float(self.sparsity_of(np.full(len(self.groups), MAX_COEFFICIENT)))
        self.dense_metrics = self.task.evaluate(self.model)
        self._dense_test_values: np.ndarray | None = None  # see test_evaluation
        self.dense_metric = float(self.dense_metrics[self.task.metric])
        size = len(self.groups)
        self.action_space = spaces.Box(0.0, MAX_COEFFICIENT, (size,), np.float32)
        self.observation_space = spaces.Box(0.0, MAX_COEFFICIENT, (size,), np.float32)
        self._coefficients = np.zeros(size, dtype=np.float32)

    def _get_obs(self) -> np.ndarray:
        return self._coefficients.copy()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:  # a seeded reset starts a reproducible run, cache counters included
            self.clear_cache()
        options = dict(options or {})
        if "target" in options:
            self.target = _check_fraction("target", options.pop("target"))
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; valid: ['target']")
        self.pruner.restore()
        self._coefficients = np.zeros(len(self.groups), dtype=np.float32)
        info = self._info(dict(self.dense_metrics), np.zeros(len(self.groups), dtype=np.int64))
        return self._get_obs(), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        coefficients = self.check_action(action)
        previous = self.pruner.applied_counts
        counts = self.pruner.apply(coefficients)  # always: env.model shows the step's masks
        key = counts.astype(np.int64).tobytes()
        metrics = self._cache.get(key) if self._cache is not None else None
        hit = metrics is not None
        if not hit:
            try:
                metrics = self._evaluate_applied(counts)
            except BaseException:
                self.pruner.apply_counts(previous)  # never leave a half-finished step behind
                raise
            if self._cache is not None:
                self._cache[key] = dict(metrics)
        self.cache_lookups += 1
        self.cache_hits += hit
        self._coefficients = coefficients.astype(np.float32)
        info = self._info(dict(metrics), counts)
        info["cache_hit"] = hit
        info["cache_hit_rate"] = self.cache_hits / self.cache_lookups
        return self._get_obs(), info["reward"], False, False, info

    def use_cache(self, enabled: bool = True) -> None:
        """Turn the evaluation cache on (empty) or off."""
        self._cache = {} if enabled else None
        self.cache_hits, self.cache_lookups = 0, 0

    def clear_cache(self) -> None:
        """Forget every cached evaluation and reset the hit counters."""
        if self._cache is not None:
            self._cache.clear()
        self.cache_hits, self.cache_lookups = 0, 0

    def evaluate_batch(self, coefficients) -> list[dict[str, Any]]:
        """Evaluate K candidates ``(K, m)`` at once; returns K ``info`` dicts as :meth:`step`
        gives (``metric``, ``reward``, ``sparsity``, ``feasible``, ``cache_hit``, ...).

        Candidates answered by the cache, or repeated within the batch, are evaluated once.
        The rest go through :attr:`batch_strategy`; their metrics equal sequential steps' to
        float tolerance and enter the cache. The environment's state (its coefficients and the
        masks on its model) is left as it was. Every row is validated as :meth:`step` does
        before anything is evaluated.
        """
        rows = self.check_actions(coefficients)
        counts = self.pruner.counts(rows)
        keys = [row.astype(np.int64).tobytes() for row in counts]
        found: dict[bytes, dict[str, float]] = {}
        hits = [False] * len(rows)
        missing: dict[bytes, None] = {}  # distinct keys to evaluate, in order
        for k, key in enumerate(keys):
            cached = self._cache.get(key) if self._cache is not None else None
            if cached is not None:
                found[key] = cached
            hits[k] = cached is not None or key in missing  # a repeat costs nothing either
            if cached is None:
                missing[key] = None
        missing = list(missing)
        if missing:
            todo = np.stack([np.frombuffer(key, dtype=np.int64) for key in missing])
            for key, metrics in zip(missing, self._batch(todo), strict=True):
                found[key] = dict(metrics)
                if self._cache is not None:
                    self._cache[key] = dict(metrics)
        infos = []
        for k, key in enumerate(keys):
            self.cache_lookups += 1
            self.cache_hits += hits[k]
            info = self._info(dict(found[key]), counts[k], rows[k])
            info["cache_hit"] = hits[k]
            info["cache_hit_rate"] = self.cache_hits / self.cache_lookups
            infos.append(info)
        return infos

    @property
    def batch_strategy(self) -> str:
        """The strategy :meth:`evaluate_batch` uses: ``sliced``, ``stacked`` or
        ``sequential``."""
        return self._batcher().name

    def _batcher(self):
        if self._batch_evaluator is None:
            from prunegym.envs.evaluation.strategies import make_batch_evaluator

            self._batch_evaluator = make_batch_evaluator(
                self.batching, self.task, self.model, self.pruner, self.dense_metrics
            )
        return self._batch_evaluator

    def _batch(self, counts: np.ndarray) -> list[dict[str, float]]:
        return self._batcher()(counts)

    def _evaluate_applied(self, counts: np.ndarray) -> dict[str, float]:
        """Metrics of the masks just applied: through the sliced chain when the batch strategy
        is ``sliced`` (the physically smaller model; the same numbers evaluate_batch gives),
        else ``task.evaluate`` of the masked model."""
        batcher = self._batcher()
        if batcher.name == "sliced":
            return batcher(counts[None])[0]
        return self.task.evaluate(self.model)

    def check_actions(self, actions) -> np.ndarray:
        """Validate a batch of actions ``(K, m)``; returns float64 ``(K, m)``."""
        size = len(self.groups)
        rows = _numeric(actions, "actions", f"(K, {size})")
        if rows.ndim != 2 or rows.shape[1] != size:
            raise ValueError(
                f"actions must have shape (K, {size}), one row of coefficients per candidate; "
                f"got shape {rows.shape}"
            )
        for k, row in enumerate(rows):
            try:
                self.check_action(row)
            except ValueError as error:
                raise ValueError(f"candidate {k}: {error}") from None
        return rows

    def check_action(self, action) -> np.ndarray:
        """Validate an action and return it as float64 ``(m,)``; raise ``ValueError`` if bad."""
        size = len(self.groups)
        coefficients = _numeric(action, "action", f"({size},)")
        if coefficients.shape != (size,):
            raise ValueError(
                f"action must have shape ({size},), one coefficient per pruning group; "
                f"got shape {coefficients.shape}"
            )
        bad = [
            f"action[{i}]={value!r}"
            for i, value in enumerate(coefficients.tolist())
            if not (math.isfinite(value) and 0.0 <= value <= MAX_COEFFICIENT)
        ]
        if bad:
            raise ValueError(
                f"action entries must be finite and within [0, {MAX_COEFFICIENT}]; "
                f"offending: {', '.join(bad)}"
            )
        return coefficients

    def reward(self, metric: float, sparsity: float) -> float:
        """Normalised metric minus the quadratic sparsity penalty (see the class docstring)."""
        sign = 1.0 if self.task.higher_is_better else -1.0
        normalised = sign * (metric - self.dense_metric) / self.task.metric_scale
        if math.isnan(normalised):
            normalised = -MAX_NORMALISED_METRIC
        normalised = min(max(normalised, -MAX_NORMALISED_METRIC), MAX_NORMALISED_METRIC)
        return float(normalised - self.penalty * (sparsity - self.target) ** 2)

    def sparsity_of(self, coefficients: np.ndarray) -> np.ndarray:
        """Exact achieved sparsity of ``(m,)`` or ``(K, m)`` coefficients, without evaluating."""
        return self.pruner.sparsity(coefficients)

    def export(self, coefficients: np.ndarray) -> torch.nn.Module:
        """A physically smaller copy of the model pruned at ``coefficients`` ``(m,)``: the
        masked channels removed with Torch-Pruning, compensated biases kept. The environment's
        own state (masks, coefficients) is left as it was."""
        from prunegym.pruning.export import physically_prune

        coefficients = self.check_action(coefficients)
        if self.granularity == "weight":
            raise ValueError(
                "weight-level (unstructured) masks zero single weights; no channel can be "
                "removed physically, so there is nothing smaller to export"
            )
        previous = self.pruner.applied_counts
        counts = self.pruner.apply(coefficients)
        try:
            return physically_prune(
                self.model, self.groups, self.pruner.orders, counts, self.task.example_inputs
            )
        finally:
            self.pruner.apply_counts(previous)

    def test_evaluation(
        self, coefficients: np.ndarray | None = None, model: torch.nn.Module | None = None
    ) -> tuple[dict[str, float], np.ndarray]:
        """Score ``coefficients`` ``(m,)`` (or a ``model`` pruned elsewhere; neither: the dense
        model) on the task's held-out test episodes, for tasks whose metric is a mean over
        random episodes (``task.test_episodes > 0``).

        Returns:
            The task's summary (mean, 95 % interval, episodes, paired difference from the dense
            model on the same episodes; :meth:`prunegym.Task.summarize_test`) and the
            ``(test_episodes,)`` per-episode metrics. The environment's state is left as it
            was; the dense model's test episodes are run once and kept.
        """
        if not self.task.test_episodes:
            raise ValueError(
                f"task {self.task.name!r} has no test episodes: its metric is deterministic"
            )
        if self._dense_test_values is None:
            self._dense_test_values = self._test_values_at(np.zeros(len(self.groups)))
        dense = self._dense_test_values
        if model is not None:
            values = np.asarray(self.task.test_episode_metrics(model), dtype=np.float64)
        elif coefficients is None:
            values = dense
        else:
            values = self._test_values_at(self.check_action(coefficients))
        return self.task.summarize_test(values, dense), values

    def _test_values_at(self, coefficients: np.ndarray) -> np.ndarray:
        """Per-episode test metrics of the model masked at ``coefficients``; the masks that
        were applied before are put back afterwards."""
        previous = self.pruner.applied_counts
        self.pruner.apply(coefficients)
        try:
            return np.asarray(self.task.test_episode_metrics(self.model), dtype=np.float64)
        finally:
            self.pruner.apply_counts(previous)

    def sparsity_estimate_of(self, coefficients: np.ndarray) -> np.ndarray:
        """The paper's estimate ``Σ c_i s_i / ‖θ‖₀`` (eq. 1b) of ``(m,)`` or ``(K, m)``."""
        return self.pruner.sparsity_estimate(coefficients)

    def pruned_counts(self, coefficients: np.ndarray) -> np.ndarray:
        """Masked channels per group, ``⌊c_i·n_i⌉`` (int64), for ``(m,)`` or ``(K, m)``."""
        return self.pruner.counts(coefficients)

    def _info(
        self, metrics: dict[str, float], counts: np.ndarray, coefficients: np.ndarray | None = None
    ) -> dict[str, Any]:
        coefficients = self._coefficients if coefficients is None else coefficients
        zeroed = int(self.pruner.zeroed(counts))
        total = self.pruner.total_parameters
        sparsity = zeroed / total
        metric = float(metrics[self.task.metric])
        return {
            "metric": metric,
            **{key: float(value) for key, value in metrics.items()},
            "dense_metric": self.dense_metric,
            "sparsity": sparsity,
            "sparsity_estimate": float(self.pruner.sparsity_estimate(coefficients)),
            "target": self.target,
            "tolerance": self.tolerance,
            "feasible": bool(abs(sparsity - self.target) <= self.tolerance),
            "params_kept": total - zeroed,
            "params_total": total,
            "pruned_channels": counts.astype(np.int64).tolist(),
            "reward": self.reward(metric, sparsity),
        }


def _numeric(values, name: str, shape: str) -> np.ndarray:
    """``values`` as a float64 array, or ``ValueError`` naming ``name`` and the ``shape``."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numeric with shape {shape}: {error}") from error


def _check_fraction(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}") from error
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return value
