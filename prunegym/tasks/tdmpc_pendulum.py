"""The TD-MPC pixel-pendulum task: a trained controller, scored by closed-loop return.

## Description
The model is the shipped TD-MPC world model (encoder, dynamics, reward, π, twin Q; latent 50,
hidden 512, 1,530,952 parameters) trained on the pixel pendulum (``prunegym/PixelPendulum-v0``:
Pendulum-v1 seen as 3 stacked 28×28 grayscale frames, action repeat 2). Evaluating a pruned
model runs ``episodes`` fixed-seed episodes together, batching the network calls.

## Metric
``return``: mean episode return (sum of Pendulum-v1 rewards over 200 steps; about −1,200 for
random actions, 0 at best) over the ``episodes`` search episodes. Also ``return_std``,
``return_ci95`` (half-width of the 95 % interval of the mean) and ``normalized``: 0 for the
random policy, 1 for the dense agent, measured on the same seeds. The return of a few episodes
is noisy (a standard deviation of about 100 between episodes), so a solver's chosen result is
scored again on ``test_episodes`` held-out seeds (:meth:`test_episode_metrics`), with the
normalised score and the paired difference from the dense agent on those seeds. By default
the agent acts with its policy prior π (``mode="policy"``); ``mode="plan"`` runs MPPI planning
with the world model (horizon ``plan_horizon``), 30 to 60 times slower.

## Episodes on a device
With ``episode_engine="torch"`` the episodes run as tensor operations on the task's device
(:mod:`prunegym.tasks.tdmpc.tensor_episodes`): Pendulum-v1's equations and frames from a table
of the renderer's frames, K candidates × episodes in lockstep (:meth:`evaluate_candidates`).
Their returns equal the Gymnasium-wrapped episodes' on the same seeds (the CPU tests check it).
``"torch+table"`` (the default on a GPU: ``"auto"``) also reads the first convolution's output
from a table of its responses to every frame: the same numbers to float rounding, which a
closed loop amplifies into other trajectories now and then, so it is compared statistically.
``"numpy"`` (the default on the CPU) steps the pendulums as numpy arrays, bit-identical to the
wrapped episodes.
"""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prunegym.tasks.base import Task
from prunegym.tasks.intervals import mean_ci95
from prunegym.tasks.options import check_at_least
from prunegym.tasks.tdmpc.agent import TDMPC
from prunegym.tasks.tdmpc.calibration import CALIBRATION_EPISODES, calibration_data
from prunegym.tasks.tdmpc.checkpoint import (
    default_checkpoint,
    load_world_model,
    read_checkpoint,
)
from prunegym.tasks.tdmpc.controllers import random_controller
from prunegym.tasks.tdmpc.episodes import EpisodeRunner, network_controller, record_episode
from prunegym.tasks.tdmpc.stacked_policy import StackedPolicy
from prunegym.tasks.tdmpc.tensor_episodes import (
    FirstConvTable,
    FrameTable,
    TensorPendulums,
    replaced_forward,
)
from prunegym.tasks.tdmpc.world_model import WorldModel

EVALUATION_SEEDS_START = 20_000  # search episodes: what solvers see
TEST_SEEDS_START = 40_000  # held-out test episodes: how the chosen result is scored
MODES = ("policy", "plan")
ENGINES = ("auto", "numpy", "torch", "torch+table")


class TDMPCPendulumTask(Task):
    """Prune the TD-MPC pendulum agent; the metric is its closed-loop return.

    Args:
        checkpoint: A TD-MPC checkpoint; ``None`` uses the shipped one.
        episodes: ``K``, fixed-seed search episodes per evaluation (seeds 20,000 on).
        test_episodes: Held-out episodes that score a solver's result (seeds 40,000 on); at
            least 2, for an interval.
        mode: ``"policy"`` (act with π) or ``"plan"`` (MPPI planning).
        plan_horizon: Planning horizon in ``"plan"`` mode. The default 1 scored highest for the
            shipped agent on 8 episodes, though not significantly above π
            (``benchmarks/tdmpc_planning.py``); at its trained horizon 3 the
            planner fails.
        calibration_episodes: Dense-agent episodes whose frames calibrate the statistics:
            the first ones the checkpoint records, replayed from their actions, the same on
            every machine (:mod:`prunegym.tasks.tdmpc.calibration`; the shipped checkpoint
            records 4).
        episode_engine: ``"numpy"``, ``"torch"`` (episodes as tensors on the task's device,
            ``mode="policy"`` only), ``"torch+table"`` (and the first convolution from a table)
            or ``"auto"``: torch+table on a GPU, numpy on the CPU.
    """

    name = "tdmpc-pendulum"
    metric = "return"
    higher_is_better = True
    metric_scale = 100.0

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        episodes: int = 8,
        mode: str = "policy",
        calibration_episodes: int = CALIBRATION_EPISODES,
        plan_horizon: int = 1,
        test_episodes: int = 100,
        episode_engine: str = "auto",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
        if episode_engine not in ENGINES:
            raise ValueError(f"episode_engine must be one of {ENGINES}, got {episode_engine!r}")
        if episode_engine.startswith("torch") and mode != "policy":
            raise ValueError(
                f"episode_engine={episode_engine!r} runs the policy prior; use mode='policy'"
            )
        self.episode_engine = episode_engine
        self._frames: FrameTable | None = None  # on the device, built when first needed
        self._tensor_runs: dict[int, TensorPendulums] = {}  # by first seed
        self._conv_tables: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        check_at_least(
            "task 'tdmpc-pendulum'", 1, episodes=episodes,
            calibration_episodes=calibration_episodes, plan_horizon=plan_horizon,
        )  # fmt: skip
        if test_episodes < 2:
            raise ValueError(f"test_episodes must be >= 2 (for an interval), got {test_episodes}")
        self.checkpoint, self.mode, self.episodes = checkpoint, mode, episodes
        self.test_episodes = test_episodes
        self._test_runner: EpisodeRunner | None = None
        self._random_test_return: float | None = None
        self.plan_horizon, self.calibration_episodes = plan_horizon, calibration_episodes
        self._dense, recorded = read_checkpoint(checkpoint)
        self.config = self._dense.config
        seeds = list(range(EVALUATION_SEEDS_START, EVALUATION_SEEDS_START + episodes))
        self.runner = EpisodeRunner(seeds, self.config.env)
        self.random_return = float(self.runner.run(random_controller(0)).mean())
        self.dense_return = float(self._returns(self._dense).mean())
        self._calibration = calibration_data(
            self._dense, self.config.env, calibration_episodes, recorded,
            Path(checkpoint or default_checkpoint()), self.device,
        )  # fmt: skip

    def __getstate__(self) -> dict:
        """Copies and pickles leave the per-model convolution tables (a weak dictionary)
        behind; they are built again when first needed."""
        return {**self.__dict__, "_conv_tables": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._conv_tables = weakref.WeakKeyDictionary()

    def to(self, device) -> TDMPCPendulumTask:
        """Move the task; the dense agent's return is measured again where the episodes now
        run (its normalised score is 1 on every device)."""
        engine = self.uses_tensor_episodes
        super().to(device)
        self._frames, self._tensor_runs = None, {}
        self._conv_tables = weakref.WeakKeyDictionary()
        if engine or self.uses_tensor_episodes:
            self.dense_return = float(self._returns(self._dense).mean())
        return self

    @property
    def uses_tensor_episodes(self) -> bool:
        """Whether episodes run as tensors on the device (``episode_engine``)."""
        if self.episode_engine == "auto":
            return self.mode == "policy" and self.device.type != "cpu"
        return self.episode_engine.startswith("torch")

    # -- the Task contract ----------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        return load_world_model(self.checkpoint)

    def components(self, model: nn.Module) -> dict[str, nn.Module]:
        return {
            "encoder": model.encoder,
            "dynamics": model.dynamics,
            "reward": model.reward_head,
            "pi": model.pi_head,
            "Q": model.Q,
        }

    @property
    def example_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        observations, actions = self._calibration
        return observations[:2], actions[:2]

    def output_layers(self, model: nn.Module) -> list[nn.Module]:
        return [model.reward_head[-1], model.pi_head[-1], model.Q[0][-1], model.Q[1][-1]]

    def calibration_batches(self):
        observations, actions = self._calibration
        return list(zip(observations.split(256), actions.split(256), strict=True))

    def forward(self, model: nn.Module, batch) -> torch.Tensor:
        """All component outputs concatenated: ``(B, latent + 4)``."""
        observations, actions = batch
        return torch.cat(model(observations, actions), dim=-1)

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        """Squared distance of every component output from the dense model's."""
        with torch.no_grad():
            target = self.forward(self._dense, batch)
        return nn.functional.mse_loss(self.forward(model, batch), target)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return self._metrics(self._returns(model))

    @property
    def stacks_evaluation(self) -> bool:
        """Whether :meth:`evaluate_stacked` applies: in policy mode (only the encoder and π run,
        from their parameters); planning runs the whole world model, one set at a time."""
        return self.mode == "policy"

    @torch.no_grad()
    def evaluate_stacked(
        self, model: nn.Module, parameters: dict[str, torch.Tensor]
    ) -> list[dict[str, float]]:
        """All K parameter sets' episodes run in lockstep; per decision, the policy of every
        set is computed by one :class:`StackedPolicy` call (grouped convolutions over the
        sets), bit-identical to K separate :meth:`evaluate` calls (with tensor episodes, to
        ``episode_engine="torch"``'s; the first-convolution table is not used). Policy mode
        only (:attr:`stacks_evaluation`): planning runs the whole world model."""
        if not self.stacks_evaluation:
            raise ValueError("evaluate_stacked runs the policy prior; mode='plan' plans")
        count = len(next(iter(parameters.values())))
        policy = StackedPolicy(model, parameters)
        if self.uses_tensor_episodes:
            frames = self._frame_table()
            returns = self._tensor_run(self.runner).run(
                lambda keys: policy(frames.stacks(keys)), count
            )
            return [self._metrics(row) for row in returns.cpu().numpy()]
        returns = self.runner.run(network_controller(policy, self.device), copies=count)
        return [self._metrics(row) for row in returns.reshape(count, self.episodes)]

    # -- K candidates in lockstep on the device ---------------------------------------------------
    @property
    def batches_candidates(self) -> bool:
        """:meth:`evaluate_candidates` works with the tensor episodes."""
        return self.uses_tensor_episodes

    @property
    def candidate_rows(self) -> int:
        return self.episodes

    @torch.no_grad()
    def evaluate_candidates(self, model: nn.Module, count: int, masked) -> list[dict[str, float]]:
        """The search episodes of ``count`` candidates, stepped together as tensors on the
        device; the policy of every candidate is one forward inside ``masked(episodes)``."""
        if not self.uses_tensor_episodes:
            raise ValueError("evaluate_candidates needs episode_engine='torch' (or a GPU)")
        with masked(self.episodes):
            returns = self._tensor_run(self.runner).run(self._tensor_policy(model), count)
        return [self._metrics(row) for row in returns.cpu().numpy()]

    def _tensor_run(self, runner: EpisodeRunner) -> TensorPendulums:
        key = runner.seeds[0]
        if key not in self._tensor_runs:
            self._tensor_runs[key] = TensorPendulums(runner, self._frame_table())
        return self._tensor_runs[key]

    def _frame_table(self) -> FrameTable:
        if self._frames is None:
            self._frames = FrameTable(self.runner, self.device)
        return self._frames

    def _tensor_policy(self, model: WorldModel):
        """``keys (B, frames) -> π(h(stack))``; with ``torch+table`` (or ``auto``) the first
        convolution is read from its table of responses."""
        if self.episode_engine == "torch":
            frames = self._frame_table()
            return lambda keys: model.pi(model.encode(frames.stacks(keys)))
        first = model.encoder[0]
        if first not in self._conv_tables:
            self._conv_tables[first] = FirstConvTable(self._frame_table(), WorldModel.preprocess)
        forward = self._conv_tables[first].forward(first)  # once per evaluation

        def policy(keys: torch.Tensor) -> torch.Tensor:
            with replaced_forward(first, forward):
                return model.pi(model.encoder(keys))

        return policy

    def _metrics(self, returns: np.ndarray) -> dict[str, float]:
        mean, half_width = mean_ci95(returns)
        span = self.dense_return - self.random_return
        return {
            "return": mean,
            "return_std": float(returns.std()),
            "return_ci95": half_width,
            "normalized": (mean - self.random_return) / span if span else float("nan"),
        }

    # -- held-out test episodes -----------------------------------------------------------------
    @torch.no_grad()
    def test_episode_metrics(self, model: nn.Module) -> np.ndarray:
        """``(test_episodes,)`` returns of the held-out episodes (seeds 40,000 on)."""
        if self.uses_tensor_episodes:
            runner = self._test_runs()
            returns = self._tensor_run(runner).run(self._tensor_policy(model))
            return returns[0].cpu().numpy()
        return self._test_runs().run(self._controller(model))

    def _test_runs(self) -> EpisodeRunner:
        if self._test_runner is None:
            seeds = range(TEST_SEEDS_START, TEST_SEEDS_START + self.test_episodes)
            self._test_runner = EpisodeRunner(list(seeds), self.config.env)
        return self._test_runner

    def summarize_test(self, values: np.ndarray, dense_values: np.ndarray) -> dict[str, float]:
        """The task's summary plus ``normalized`` (random policy 0, dense agent 1, both on the
        test seeds) and ``normalized_ci95``, the paired interval scaled the same way."""
        summary = super().summarize_test(values, dense_values)
        if self._random_test_return is None:
            self._random_test_return = float(self._test_runs().run(random_controller(0)).mean())
        span = float(np.mean(dense_values)) - self._random_test_return
        summary["normalized"] = (summary["return"] - self._random_test_return) / span
        summary["normalized_ci95"] = summary["return_vs_dense_ci95"] / abs(span)
        summary["random_return"] = self._random_test_return
        return summary

    def options(self) -> dict[str, object]:
        options = {
            "episode_engine": self.episode_engine,
            "episodes": self.episodes,
            "mode": self.mode,
            "calibration_episodes": self.calibration_episodes,
            "plan_horizon": self.plan_horizon,
            "test_episodes": self.test_episodes,
        }
        if self.checkpoint is not None:
            options["checkpoint"] = str(self.checkpoint)
        return options

    def describe(self) -> dict:
        return {
            "episodes": self.episodes,
            "mode": self.mode,
            "dense_return": self.dense_return,
            "random_return": self.random_return,
        }

    # -- pictures -------------------------------------------------------------------------------
    @torch.no_grad()
    def episode_returns(self, model: WorldModel) -> np.ndarray:
        """``(K,)`` returns of the evaluation episodes (the numbers behind ``evaluate``)."""
        return self._returns(model)

    @torch.no_grad()
    def episode_frames(self, model: WorldModel, episode: int = 0, size: int = 96):
        """Colour frames ``(T, size, size, 3)`` uint8 of evaluation episode ``episode`` played
        by ``model``, and its return."""
        if not 0 <= episode < self.episodes:
            raise ValueError(f"episode must lie in [0, {self.episodes}), got {episode}")
        seed = EVALUATION_SEEDS_START + episode
        return record_episode(self._controller(model), seed, self.config.env, size)

    # -- helpers --------------------------------------------------------------------------------
    def _controller(self, model: WorldModel):
        if self.mode == "policy":
            return network_controller(lambda obs: model.pi(model.encode(obs)), self.device)

        planner = TDMPC(self.config, seed=0)
        planner.model = model
        return network_controller(
            lambda obs: planner.act(obs, plan=True, horizon=self.plan_horizon), self.device
        )

    def _returns(self, model: WorldModel) -> np.ndarray:
        if self.uses_tensor_episodes:
            return self._tensor_run(self.runner).run(self._tensor_policy(model))[0].cpu().numpy()
        return self.runner.run(self._controller(model))
