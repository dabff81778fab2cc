"""Train TD-MPC on the pixel pendulum, resumably: CSV log, learning curve, checkpoints.

The run directory holds:

- ``checkpoint.pt``: everything needed to resume (agent, optimisers, target network, replay
  buffer, RNG states, step counters, log), written atomically every ``checkpoint_every``
  environment steps at an episode boundary;
- ``log.csv``: one row per episode (env step, return, losses, evaluation return, wall time);
- ``curve.png``: training and evaluation returns against environment steps;
- ``agent.pt``: the final world-model weights and configuration (what the task loads).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from prunegym.tasks.checkpoints import safe_load, save_atomically
from prunegym.tasks.tdmpc.agent import TDMPC
from prunegym.tasks.tdmpc.buffer import EpisodeBuffer
from prunegym.tasks.tdmpc.calibration import CALIBRATION_EPISODES, record_calibration_actions
from prunegym.tasks.tdmpc.checkpoint import load_world_model
from prunegym.tasks.tdmpc.config import TDMPCConfig
from prunegym.tasks.tdmpc.episodes import MAX_TORQUE, EpisodeRunner, network_controller
from prunegym.tasks.tdmpc.pendulum import make_pixel_pendulum

LOG_FIELDS = [
    "env_step", "episode", "return", "eval_return", "consistency", "reward", "value", "pi",
    "wall_seconds",
]  # fmt: skip
EVAL_SEEDS = list(range(10_000, 10_005))


def save_agent(
    agent: TDMPC,
    path: str | Path,
    recipe: dict | None = None,
    calibration_episodes: int = CALIBRATION_EPISODES,
) -> None:
    """Write the world-model weights, configuration and recorded calibration actions
    (:func:`~prunegym.tasks.tdmpc.calibration.record_calibration_actions`, played here once so
    that the task replays the same frames on every machine); loadable with ``weights_only``."""
    actions = record_calibration_actions(agent.model, agent.config.env, calibration_episodes)
    state = {"config": agent.config.to_dict(), "model": agent.model.state_dict()}
    torch.save({**state, "recipe": recipe, "calibration_actions": actions}, path)


def add_calibration_actions(
    checkpoint: str | Path, episodes: int = CALIBRATION_EPISODES
) -> torch.Tensor:
    """Record ``episodes`` calibration episodes' actions with the agent of ``checkpoint`` (an
    ``agent.pt`` written without them) and write them into the file, replacing it atomically;
    returns them, ``(episodes, decisions)``. Everything else in the file stays as it was."""
    path = Path(checkpoint)
    state = safe_load(path, "TD-MPC checkpoint")
    model = load_world_model(path)
    state["calibration_actions"] = record_calibration_actions(model, model.config.env, episodes)
    save_atomically(state, path)
    return state["calibration_actions"]


class Trainer:
    """One training run in ``out_dir``; ``run`` can be called again after an interruption.

    Args:
        out_dir: Run directory.
        steps: Total environment steps (simulator steps; 200 per episode).
        seed: Seed of the agent, the buffer and the episode starts.
        config: TD-MPC configuration.
        eval_every: Environment steps between evaluations (5 episodes, π only).
        checkpoint_every: Environment steps between resumable checkpoints.
        progress: ``progress(env_step, row)`` called after every episode.
    """

    def __init__(
        self,
        out_dir: str | Path,
        steps: int,
        seed: int = 0,
        config: TDMPCConfig | None = None,
        eval_every: int = 2000,
        checkpoint_every: int = 1000,
        progress: Callable[[int, dict], None] | None = None,
    ) -> None:
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.steps, self.seed = steps, seed
        self.config = config or TDMPCConfig()
        self.eval_every, self.checkpoint_every = eval_every, checkpoint_every
        self.progress = progress
        env = self.config.env
        self.decisions = env.decisions
        self.agent = TDMPC(self.config, seed)
        self.buffer = EpisodeBuffer(
            capacity=1 + 200_000 // 200,
            length=self.decisions,
            observation_shape=(env.frames, env.size, env.size),
            seed=seed,
        )
        self.env = make_pixel_pendulum(env.size, env.frames, env.action_repeat)
        self.env_step, self.episode, self.wall = 0, 0, 0.0
        self.rows: list[dict] = []
        self.rng = np.random.default_rng(seed)

    # -- checkpoints --------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        state = {
            "agent": self.agent.state_dict(),
            "buffer": self.buffer.state_dict(),
            "env_step": self.env_step,
            "episode": self.episode,
            "wall": self.wall,
            "rows": self.rows,
            "rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "seed": self.seed,
        }
        save_atomically(state, self.checkpoint_path)  # an interruption never corrupts it

    def load_checkpoint(self) -> None:
        if not self.checkpoint_path.exists():
            raise FileNotFoundError(f"no checkpoint to resume from at {self.checkpoint_path}")
        state = safe_load(self.checkpoint_path, "training checkpoint")
        self.agent.load_state_dict(state["agent"])
        self.buffer.load_state_dict(state["buffer"])
        self.env_step, self.episode = state["env_step"], state["episode"]
        self.wall, self.rows = state["wall"], state["rows"]
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])

    # -- the loop -----------------------------------------------------------------------------
    def _schedule(self) -> tuple[float, int]:
        """Exploration std and planning horizon at the current agent step."""
        learn, plan = self.config.learn, self.config.plan
        agent_steps = max(0, self.env_step - learn.seed_steps) // self.config.env.action_repeat
        fraction = min(1.0, agent_steps / learn.schedule_steps)
        std = learn.std_start + fraction * (learn.std_end - learn.std_start)
        horizon = int(round(1 + fraction * (plan.horizon - 1)))
        return std, horizon

    def _collect_episode(self) -> tuple[float, dict]:
        learn = self.config.learn
        observation, _ = self.env.reset(seed=self.seed * 100_003 + self.episode)
        self.agent.reset_plan()
        observations, actions, rewards = [observation], [], []
        losses: dict[str, list[float]] = {}
        for _ in range(self.decisions):
            if self.env_step < learn.seed_steps:
                action = self.rng.uniform(-1.0, 1.0, (1,)).astype(np.float32)
            else:
                std, horizon = self._schedule()
                batch = torch.from_numpy(observation[None])
                action = self.agent.act(batch, plan=True, std=std, horizon=horizon)[0].numpy()
            observation, reward, _, _, _ = self.env.step(action * MAX_TORQUE)
            observations.append(observation)
            actions.append(action)
            rewards.append(reward)
            self.env_step += self.config.env.action_repeat
            if self.env_step >= learn.seed_steps and len(self.buffer) > 0:
                sample = self.buffer.sample(learn.batch, learn.horizon)
                for key, value in self.agent.update(*sample).items():
                    losses.setdefault(key, []).append(value)
        self.buffer.add(np.stack(observations), np.stack(actions), np.array(rewards))
        self.episode += 1
        return float(np.sum(rewards)), {k: float(np.mean(v)) for k, v in losses.items()}

    def evaluate(self, seeds: list[int] = EVAL_SEEDS, plan: bool = False) -> np.ndarray:
        """Returns of fixed-seed episodes with π (or planning), no exploration noise."""
        runner = EpisodeRunner(seeds, self.config.env)
        self.agent.reset_plan()
        return runner.run(network_controller(lambda obs: self.agent.act(obs, plan=plan)))

    def run(self) -> list[dict]:
        """Train until ``steps`` environment steps; returns the log rows."""
        since_checkpoint = 0
        next_eval = (self.env_step // self.eval_every + 1) * self.eval_every
        while self.env_step < self.steps:
            started = time.perf_counter()
            episode_return, losses = self._collect_episode()
            row = {"env_step": self.env_step, "episode": self.episode, "return": episode_return}
            row.update(losses)
            if self.env_step >= next_eval or self.env_step >= self.steps:
                row["eval_return"] = float(self.evaluate().mean())
                next_eval += self.eval_every
            self.wall += time.perf_counter() - started
            row["wall_seconds"] = self.wall
            self.rows.append(row)
            if self.progress:
                self.progress(self.env_step, row)
            since_checkpoint += 200
            if since_checkpoint >= self.checkpoint_every or self.env_step >= self.steps:
                self.save_checkpoint()
                self.write_log()
                since_checkpoint = 0
        save_agent(
            self.agent,
            self.out / "agent.pt",
            {"steps": self.steps, "seed": self.seed, "wall_seconds": round(self.wall, 1)},
        )
        self.write_log()
        self.plot()
        return self.rows

    def write_log(self) -> None:
        with open(self.out / "log.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, LOG_FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.rows)

    def plot(self) -> None:
        from matplotlib.figure import Figure  # here: only drawing needs matplotlib

        steps = [r["env_step"] for r in self.rows]
        figure = Figure(figsize=(6, 3.5))
        axis = figure.subplots()
        axis.plot(steps, [r["return"] for r in self.rows], ".", alpha=0.4, label="training episode")
        evaluated = [r for r in self.rows if "eval_return" in r]
        axis.plot(
            [r["env_step"] for r in evaluated],
            [r["eval_return"] for r in evaluated],
            "o-",
            label="evaluation (π, 5 fixed seeds)",
        )
        axis.set_xlabel("environment steps")
        axis.set_ylabel("episode return")
        axis.set_title(f"TD-MPC on the pixel pendulum (seed {self.seed})")
        axis.legend()
        axis.grid(alpha=0.3)
        figure.tight_layout()
        figure.savefig(self.out / "curve.png", dpi=100)
