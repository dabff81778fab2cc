"""PruneEnv: structured pruning of a pretrained model as a Gymnasium environment."""

from __future__ import annotations

import copy
import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from prunegym.envs.evaluation.evaluator import Evaluator
from prunegym.envs.evaluation.reward import Reward
from prunegym.envs.evaluation.strategies import STRATEGIES
from prunegym.envs.features import feature_observation, feature_space, static_group_features
from prunegym.pruning.channel.groups import default_output_layers
from prunegym.pruning.channel.pruner import MAX_COEFFICIENT
from prunegym.pruning.export import physically_prune, removed_fractions
from prunegym.pruning.protocol import make_pruner
from prunegym.tasks import Task, make_task
from prunegym.tasks.base import weights_sha256
from prunegym.tasks.devices import (
    check_precision,
    device_name,
    precision_context,
    resolve_device,
)
from prunegym.tasks.options import check_at_least, check_options

OBSERVATIONS = ("coefficients", "features")


class PruneEnv(gym.Env[np.ndarray, np.ndarray]):
    """
    ## Description
    Soft-coefficient, component-aware structured pruning of a task's pretrained model
    (Sundaram et al., §III–IV). The model's Torch-Pruning dependency groups are found per
    component (encoder, decoder, ...) plus coupling groups between components. Each group ``i``
    gets a coefficient ``c_i``: the fraction of its ``n_i`` channels to remove. A step ranks the
    channels of every group by an importance criterion, masks the ``⌊c_i·n_i⌉`` least important
    ones (at most ``n_i − 1``) by zeroing their parameters, applies bias compensation and
    evaluates the task. Tasks whose model is a chain of Linear layers (the MNIST autoencoder)
    are evaluated on the physically sliced model, with the first layer's output computed once;
    the metrics equal those of the masked model to float tolerance (``batching="sequential"``
    evaluates the masked model itself). :meth:`evaluate_batch` evaluates many candidates at once.

    ## Action Space
    ``Box(0, 0.95, (m,), float32)``, one coefficient per pruning group, ordered as
    ``env.unwrapped.groups`` (component-specific groups first, coupling groups last).

    | Num | Action | Min | Max |
    |-----|--------|-----|-----|
    | i | fraction ``c_i`` of group ``i``'s channels removed | 0.0 | 0.95 |

    The upper limit 0.95 keeps every group connected. NaN, infinite, out-of-range or
    wrongly-shaped actions raise ``ValueError`` and leave the model as it was.

    ## Observation Space
    ``Box(0, 0.95, (m,), float32)``: the coefficients currently applied. With
    ``observation="features"`` (channel granularity), a ``Dict`` that any number of groups
    fits: ``"groups"`` ``(m, F)``, one row per group (its size, parameter and MAC shares, kind,
    depth, components and the spread of its channel scores, then its coefficient), and
    ``"context"`` (target, tolerance, sparsity, budget left, largest reachable sparsity); see
    :mod:`prunegym.envs.features`.

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
    - ``tolerance``: window half-width ``ε > 0``; ``info["feasible"]`` is ``|s − ρ| ≤ ε``.
    - ``granularity``: ``"channel"`` (default: structured groups as above) or ``"weight"``
      (unstructured: one group per ``nn.Linear`` layer, ``c_i`` the fraction of its weights
      zeroed, ranked by a weight-level criterion, with a bias shift per removed weight).
    - ``criterion``: channels: ``l1``, ``l2``, ``random``, ``taylor``, ``compensated``
      (default), ``lsq`` (the error left after the least-squares refit) or ``bn-scale``;
      weights: ``magnitude``, ``gradient-magnitude``, ``random``,
      ``elimination-compensation`` (default) or ``nonlinear``.
    - ``compensation``: channels: ``none``, ``mean`` (default), ``optimal`` or ``lsq`` (Linear
      and small convolution consumers refit their kept weights and bias by ridge least
      squares, ridge ``lsq_ridge`` relative to the mean input variance, default 0.01); weights:
      ``none``, ``mean`` (``W_ij E[z_j]``) or ``optimal`` (default, eq. 7).
    - ``penalty``: ``μ`` of the sparsity penalty.
    - ``probes``: Rademacher probes per calibration batch for ``optimal`` compensation.
    - ``seed``: seed of the ``random`` criterion and of the probes.
    - ``cache``: evaluate each distinct mask once (default ``True``); a step whose masked
      channel counts were seen before reuses the metrics.
      ``info["cache_hit"]`` and ``info["cache_hit_rate"]`` report it; ``reset(seed=...)``
      clears it, so seeded runs repeat exactly. Turn it off for tasks whose evaluation is
      random.
    - ``batching``: how :meth:`evaluate_batch` evaluates many candidates: ``"auto"``
      (default: the fastest the task supports), ``"sliced"`` (physically sliced layer chains
      sharing common prefixes), ``"stacked"`` (the task's ``evaluate_stacked``) or
      ``"sequential"``, or ``"batched"`` (one forward over K copies of the evaluation data,
      the dense weights shared and each candidate's channel masks applied to its
      activations). ``env.unwrapped.batch_strategy`` names the one in use.
    - ``device``: where the model, the data and every mask live: ``cpu``, ``cuda``,
      ``cuda:N`` or ``auto`` (CUDA when present). ``None`` (default): the task's device
      (``cpu`` unless the task was moved). A task object is copied before it is moved, so
      yours stays where it is. An unavailable device raises ``ValueError`` listing those
      available.
    - ``precision``: ``fp32`` (default), ``tf32`` (CUDA matmuls and convolutions in
      TensorFloat-32) or ``bf16`` (autocast); every evaluation, the dense one included, runs
      at it. Calibration statistics are always float32.
    - ``batch_memory_mb``: memory a batched evaluation may use for activations; larger
      batches are evaluated in chunks (default: 512 MiB on the CPU, half the free memory of a
      GPU).
    - ``bn_recalibration``: ``B > 0`` re-estimates every BatchNorm's running statistics on
      ``B`` calibration batches of each masked model before it is evaluated (EagleEye's
      adaptive BN; default 0: the dense statistics). It composes with compensation, candidates
      are then evaluated one by one, and ``reset`` restores the dense statistics bit for bit.
    - ``observation``: ``"coefficients"`` (default) or ``"features"`` (see Observation Space).

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
    ``sparsity_of(c)``, ``sparsity_estimate_of(c)``, ``pruned_counts(c)``,
    ``reward(metric, sparsity)`` and ``cached(c)``, none of which evaluate the model.
    ``model`` is the environment's own model with the current step's masks: they are written
    into it when it is read (a step itself evaluates sliced chains or stacked parameters
    without touching it). ``evaluate_model(m)`` scores a model pruned elsewhere (the
    Torch-Pruning baseline, from :meth:`dense_copy`), with the fraction of each group's channels
    it lacks. For tasks whose metric
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
        device: str | torch.device | None = None,
        precision: str = "fp32",
        batch_memory_mb: float | None = None,
        bn_recalibration: int = 0,
        lsq_ridge: float = 1e-2,
        observation: str = "coefficients",
    ) -> None:
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, got {observation!r}")
        # What a copy is built with (see __reduce__); the task comes along already moved.
        self._built_with = {
            "target": target, "tolerance": tolerance, "criterion": criterion,
            "compensation": compensation, "penalty": penalty, "probes": probes, "seed": seed,
            "granularity": granularity, "cache": cache, "batching": batching,
            "precision": precision, "batch_memory_mb": batch_memory_mb,
            "bn_recalibration": bn_recalibration, "lsq_ridge": lsq_ridge,
            "observation": observation,
        }  # fmt: skip
        check_options("PruneEnv", self._built_with, PruneEnv)  # kinds, in one line
        seed, probes = int(seed), int(probes)  # numpy integers too: torch takes Python ints
        check_at_least("PruneEnv", 0, seed=seed)
        if batch_memory_mb is not None and not batch_memory_mb > 0:
            raise ValueError(f"batch_memory_mb must be > 0 or None, got {batch_memory_mb!r}")
        if isinstance(task, str):
            task = make_task(task, device=device)
        if not isinstance(task, Task):
            raise TypeError(f"task must be a prunegym.Task or a task name, got {type(task)}")
        if device is not None and resolve_device(device) != task.device:
            task = copy.copy(task).to(device)  # the caller's task stays where it is
        self.task = task
        #: Where the model, the data and every mask live (``task.device``).
        self.device = task.device
        self.device_name = device_name(self.device)
        self.precision = check_precision(precision)
        target = _check_fraction("target", target)
        tolerance = _check_fraction("tolerance", tolerance, zero=False)
        if not (math.isfinite(penalty) and penalty >= 0):
            raise ValueError(f"penalty must be a finite number >= 0, got {penalty!r}")
        if batching not in STRATEGIES:
            raise ValueError(f"batching must be one of {STRATEGIES}, got {batching!r}")
        # The environment owns its model: a copy, so no caller's model is ever touched.
        self._model = self.task.load_model().eval()
        with precision_context("fp32", self.device):  # statistics and rankings in IEEE fp32
            self.pruner = make_pruner(
                granularity, self._model, self.task.components(self._model),
                self.task.example_inputs, self.task.calibration_batches, self.task.forward,
                loss=self.task.loss, output_layers=self.task.output_layers(self._model),
                criterion=criterion, compensation=compensation, probes=probes, seed=seed,
                bn_recalibration=bn_recalibration, lsq_ridge=lsq_ridge,
            )  # fmt: skip
        self.granularity, self.batching = granularity, batching
        self.criterion, self.compensation = self.pruner.criterion, self.pruner.compensation
        self.options = {
            "penalty": float(penalty), "probes": int(probes), "seed": int(seed),
            "granularity": granularity, "precision": precision,
            "bn_recalibration": int(bn_recalibration), "lsq_ridge": float(lsq_ridge),
        }  # fmt: skip
        self.weights_sha256 = weights_sha256(self._model)  # the dense weights, for result files
        sign = 1.0 if self.task.higher_is_better else -1.0
        reward = Reward(sign, math.nan, float(self.task.metric_scale), float(penalty), target)
        self.evaluator = Evaluator(
            self.task, self._model, self.pruner, reward, tolerance, batching, cache,
            precision=precision, batch_memory_mb=batch_memory_mb,
        )  # fmt: skip
        self.groups = self.pruner.groups
        self.channels = self.pruner.channels.copy()
        # Mean per-channel L2 norm of each group in the dense model (the norm-based baseline).
        self.dense_group_norms = self.pruner.group_norms()
        self.max_sparsity = float(self.sparsity_of(np.full(len(self.groups), MAX_COEFFICIENT)))
        size = len(self.groups)
        self.action_space = spaces.Box(0.0, MAX_COEFFICIENT, (size,), np.float32)
        self.observation = observation
        self._group_features: np.ndarray | None = None
        if observation == "features":
            self.group_features  # noqa: B018  (computed at build time, not in the first step)
            self.observation_space = feature_space(size)
        else:
            self.observation_space = spaces.Box(0.0, MAX_COEFFICIENT, (size,), np.float32)
        self._coefficients = np.zeros(size)  # float64, as applied: the context reads them
        self._counts = np.zeros(size, dtype=np.int64)

    # -- the Gymnasium life cycle ----------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        options = dict(options or {})
        target = _check_fraction("target", options.pop("target", self.target))
        if options:  # checked before anything changes
            raise ValueError(f"unknown reset options {sorted(options)}; valid: ['target']")
        super().reset(seed=seed)
        if seed is not None:  # a seeded reset starts a reproducible run, cache counters included
            self.clear_cache()
        self.target = target
        self.pruner.restore()
        self._coefficients = np.zeros(len(self.groups))
        self._counts = np.zeros(len(self.groups), dtype=np.int64)
        return self._get_obs(), self.evaluator.dense_info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        rows = self.evaluator.check(action, single=True)
        info = self.evaluator.evaluate(rows)[0]
        self._coefficients = rows[0].copy()  # float64: its float32 copy may round a mask away
        self._counts = np.asarray(info["pruned_channels"], dtype=np.int64)
        return self._get_obs(), info["reward"], False, False, info

    def _get_obs(self) -> np.ndarray | dict[str, np.ndarray]:
        if self.observation == "coefficients":
            return self._coefficients.astype(np.float32)
        return feature_observation(
            self.group_features, self._coefficients, self.feature_context(self._coefficients)
        )

    @property
    def group_features(self) -> np.ndarray:
        """``(m, F)`` static per-group features (:mod:`prunegym.envs.features`), computed on
        first use from the dense model (channel granularity only)."""
        if self._group_features is None:
            self._group_features = static_group_features(self)
        return self._group_features

    def feature_context(
        self, coefficients: np.ndarray, target: float | None = None
    ) -> dict[str, float]:
        """Target (the environment's unless given), tolerance, exact sparsity, budget left and
        the largest reachable sparsity at ``coefficients`` (the ``features`` context)."""
        target = self.target if target is None else float(target)
        sparsity = float(self.sparsity_of(np.asarray(coefficients, dtype=np.float64)))
        return {
            "target": target, "tolerance": self.tolerance, "sparsity": sparsity,
            "budget_left": target - sparsity, "max_sparsity": self.max_sparsity,
        }  # fmt: skip

    @property
    def model(self) -> torch.nn.Module:
        """The environment's model, masked and compensated for the current coefficients (the
        masks are written when this is read)."""
        if not np.array_equal(self.pruner.applied_counts, self._counts):
            self.pruner.apply_counts(self._counts)
        return self._model

    def __reduce__(self):
        """``copy.deepcopy`` and ``pickle``: the model, its pruner and groups and the evaluator
        are built again from (a copy of) the task with this environment's arguments (the
        Torch-Pruning groups hold autograd nodes, which neither can copy); every other
        attribute (coefficients, random generators, spec, a subclass's own) is copied, and the
        evaluation cache and test episodes come along. A copy shares no model with the
        original, and refuses to be built if its task loads other weights."""
        state = {key: value for key, value in vars(self).items() if key not in _REBUILT}
        state["target"], state["evaluator"] = self.target, self.evaluator.copy_state()
        return (_rebuilt, (type(self), self.task, self._built_with, state))

    # -- evaluation ------------------------------------------------------------------------------
    def evaluate_batch(self, coefficients, limit: int | None = None) -> list[dict[str, Any]]:
        """Evaluate K candidates ``(K, m)`` at once; returns K ``info`` dicts as :meth:`step`
        gives (``metric``, ``reward``, ``sparsity``, ``feasible``, ``cache_hit``, ...).

        Candidates answered by the cache, or repeated within the batch, are evaluated once;
        the rest go through :attr:`batch_strategy` in one call and enter the cache. Every row is
        validated before anything is evaluated. The environment's state (coefficients,
        observation) is left as it was. ``limit``: evaluate at most that many new masks and
        return the infos of the candidates up to there (a solver's budget).
        """
        return self.evaluator.evaluate(self.evaluator.check(coefficients), limit)

    @property
    def batch_strategy(self) -> str:
        """The strategy in use: ``sliced``, ``stacked`` or ``sequential``."""
        return self.evaluator.strategy.name

    def check_action(self, action) -> np.ndarray:
        """Validate an action and return it as float64 ``(m,)``; raise ``ValueError`` if bad."""
        return self.evaluator.check(action, single=True)[0]

    def check_actions(self, actions) -> np.ndarray:
        """Validate a batch of actions ``(K, m)``; returns float64 ``(K, m)``."""
        return self.evaluator.check(actions)

    def reward(self, metric, sparsity, penalty: float | None = None):
        """The reward of ``metric`` at ``sparsity`` (see the class docstring; ``penalty``
        overrides ``μ``). Solvers minimise exactly its negative."""
        return self.evaluator.reward(metric, sparsity, penalty)

    def cached(self, coefficients: np.ndarray) -> bool:
        """Whether :meth:`step` of ``coefficients`` would be answered by the cache."""
        return self.evaluator.cached(self.check_action(coefficients))

    def use_cache(self, enabled: bool = True) -> None:
        """Turn the evaluation cache on (empty) or off."""
        self.evaluator.use_cache(enabled)

    def clear_cache(self) -> None:
        """Forget every cached evaluation and reset the hit counters."""
        self.evaluator.clear_cache()

    def dense_copy(self) -> tuple[torch.nn.Module, Any, list[str]]:
        """For solvers that prune by other means: a fresh copy of the task's dense model (as
        the task builds it, on which the caller may do anything), its example inputs, and the
        names of the layers never pruned (the task's output layers)."""
        model = self.task.load_model().eval()
        outputs = self.task.output_layers(model) or default_output_layers(model)
        names = {module: name for name, module in model.named_modules()}
        return model, self.task.example_inputs, [names[module] for module in outputs]

    def evaluate_model(self, model: torch.nn.Module, dense: torch.nn.Module) -> dict[str, Any]:
        """Metrics, sparsity (``1 −`` its parameters over ``dense``'s), feasibility, reward and
        masked-channel counts of a ``model`` pruned physically by other means from ``dense``
        (:meth:`dense_copy`). The environment is left as it was."""
        with self.evaluator.precise():
            metrics = self.task.evaluate(model)
        sparsity = 1.0 - _parameters(model) / _parameters(dense)
        metric = float(metrics[self.task.metric])
        fractions = removed_fractions(self.groups, dense, model)
        return {
            "metric": metric,
            **{key: float(value) for key, value in metrics.items()},
            "sparsity": sparsity,
            "feasible": bool(abs(sparsity - self.target) <= self.tolerance),
            "reward": self.reward(metric, sparsity),
            "coefficients": fractions,
            "pruned_channels": np.rint(fractions * self.channels).astype(np.int64).tolist(),
        }

    def export(self, coefficients: np.ndarray) -> torch.nn.Module:
        """A physically smaller copy of the model pruned at ``coefficients`` ``(m,)``: the
        masked channels removed with Torch-Pruning, compensated biases kept."""
        coefficients = self.check_action(coefficients)
        if self.granularity == "weight":
            raise ValueError(
                "weight-level (unstructured) masks zero single weights; no channel can be "
                "removed physically, so there is nothing smaller to export"
            )
        counts = self.pruner.counts(coefficients)
        self.pruner.apply_counts(counts)
        return physically_prune(
            self._model, self.groups, self.pruner.orders, counts, self.task.example_inputs
        )

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
        counts = (
            None if coefficients is None else self.pruner.counts(self.check_action(coefficients))
        )
        evaluator = self.evaluator
        dense = evaluator.test_values()
        values = evaluator.test_values(counts, model)
        return self.task.summarize_test(values, dense), values

    def calibration_distortion(self, coefficients) -> np.ndarray:
        """``(K,)`` float64: how far the model masked at each row of ``coefficients`` ``(K, m)``
        moves the outputs on the task's calibration batches from the dense model's (lower:
        closer): the mean squared difference, or for the task's ``output_kind`` ``"logits"``
        the mean KL divergence of the softmax. A cheap screen that evaluates no metric (each
        distinct mask once: all in one forward over the calibration batches where candidates
        are evaluated ``batched``, else one at a time); the environment's state is left as it
        was and nothing enters the evaluation cache."""
        counts = self.pruner.counts(self.check_actions(coefficients))
        return self.evaluator.calibration_distortion(counts)

    # -- facts that need no evaluation -----------------------------------------------------------
    @property
    def target(self) -> float:
        """The sparsity target ``ρ`` (fraction)."""
        return self.evaluator.target

    @target.setter
    def target(self, value: float) -> None:
        self.evaluator.target = _check_fraction("target", value)

    @property
    def tolerance(self) -> float:
        return self.evaluator.tolerance

    @property
    def penalty(self) -> float:
        return self.evaluator.reward.penalty

    @property
    def dense_metrics(self) -> dict[str, float]:
        return self.evaluator.dense_metrics

    @property
    def dense_metric(self) -> float:
        return self.evaluator.reward.dense_metric

    @property
    def cache_hits(self) -> int:
        return self.evaluator.hits

    @property
    def cache_lookups(self) -> int:
        return self.evaluator.lookups

    def sparsity_of(self, coefficients: np.ndarray) -> np.ndarray:
        """Exact achieved sparsity of ``(m,)`` or ``(K, m)`` coefficients, without evaluating."""
        counts = self.pruner.counts(coefficients)
        return np.asarray(self.pruner.zeroed(counts)) / self.pruner.total_parameters

    def costs_of(self, coefficients: np.ndarray) -> dict[str, Any]:
        """What ``(m,)`` coefficients leave, without evaluating: ``params_kept``,
        ``params_total``, ``sparsity`` and, for channel pruning, ``macs`` per sample,
        ``macs_dense`` and the ``channel_fractions`` removed per group. Fractions up to 1 are
        accepted (a model pruned by other means, such as Torch-Pruning, may remove more than
        an action can)."""
        fractions = np.asarray(coefficients, dtype=np.float64)
        if fractions.shape != (len(self.groups),) or not np.all(
            np.isfinite(fractions) & (fractions >= 0) & (fractions <= 1)
        ):
            raise ValueError(
                f"coefficients must be {len(self.groups)} finite fractions in [0, 1], got "
                f"{fractions.tolist()}"
            )
        counts = self.pruner.counts(fractions)[None]
        zeroed = int(np.asarray(self.pruner.zeroed(counts)).reshape(-1)[0])
        total = int(self.pruner.total_parameters)
        return {"params_kept": total - zeroed, "params_total": total,
                "sparsity": zeroed / total, **self.evaluator.costs(counts)[0]}  # fmt: skip

    def sparsity_estimate_of(self, coefficients: np.ndarray) -> np.ndarray:
        """The paper's estimate ``Σ c_i s_i / ‖θ‖₀`` (eq. 1b) of ``(m,)`` or ``(K, m)``."""
        return self.pruner.sparsity_estimate(coefficients)

    def pruned_counts(self, coefficients: np.ndarray) -> np.ndarray:
        """Masked channels per group, ``min(⌊c_i·n_i⌉, n_i − 1)`` (int64), for ``(K, m)`` too."""
        return self.pruner.counts(coefficients)


_REBUILT = ("task", "_model", "pruner", "evaluator", "groups")  # what a copy builds again


def _rebuilt(cls: type[PruneEnv], task: Task, arguments: dict, state: dict) -> PruneEnv:
    """A ``cls`` environment whose model, pruner and evaluator are built from ``task`` and
    ``arguments`` by :class:`PruneEnv` itself (a subclass's ``__init__`` may take others), then
    put in ``state`` (:meth:`PruneEnv.__reduce__`)."""
    env = cls.__new__(cls)
    PruneEnv.__init__(env, task, **arguments)
    if env.weights_sha256 != state["weights_sha256"]:
        raise ValueError(
            f"the copy's task loaded other weights (SHA-256 {env.weights_sha256[:12]}…, not "
            f"{state['weights_sha256'][:12]}…): its checkpoint changed or is not where it was"
        )
    env.target = state.pop("target")
    env.evaluator.restore_state(state.pop("evaluator"))
    env.__dict__.update(state)
    return env


def _parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _check_fraction(name: str, value: float, zero: bool = True) -> float:
    """``value`` as a float in [0, 1) (in (0, 1) unless ``zero``), or a one-line
    ``ValueError``."""
    interval = "[0, 1)" if zero else "(0, 1)"
    try:
        value = float(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}") from error
    if not (math.isfinite(value) and (0.0 <= value if zero else 0.0 < value) and value < 1.0):
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return value
