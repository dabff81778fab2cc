"""Stable-Baselines3's PPO, AMC style, on one network or several; then asked about others.

    python examples/sb3_transfer.py [--train mnist-ae[,toy,...]] [--steps 20000] [--seed 0]
        [--tasks mnist-ae,mnist-classifier,diffusion-sorption] [--targets 0.1,...,0.7]
        [--target-range 0.05,0.75]

PPO learns in sequential episodes (``prunegym/PruneSequential-v0``: one group per step, from
the input side, the budget enforced by the environment, a target drawn per episode from
``--target-range``) with :class:`~prunegym.agents.GroupSetExtractor`, whose weights fit any
number of groups; with several ``--train`` tasks, each episode picks one of them
(:class:`~prunegym.agents.TaskMixture`). Its deterministic answers are then read, with no
search, through :func:`~prunegym.agents.transfer_policy` on each task of ``--tasks``,
beside the one-shot baselines ``lamp``, ``norm`` and ``uniform``. Cells: the metric (``*``
outside the window), one evaluation each.
"""

from __future__ import annotations

import argparse
import time

from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from tqdm import tqdm

from prunegym.agents import (
    GroupSetExtractor,
    TaskMixture,
    make_agent,
    sb3_sequential_env,
    transfer_policy,
)
from prunegym.envs.prune_env import PruneEnv


class _Bar(BaseCallback):
    """A tqdm bar over PPO's environment steps."""

    def __init__(self, total: int) -> None:
        super().__init__()
        self.bar = tqdm(total=total, desc="PPO", unit="step", mininterval=1.0)

    def _on_step(self) -> bool:
        self.bar.update(1)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


def answer(model, env, target: float) -> dict:
    """The info of one deterministic sequential episode of ``model`` on ``env`` at ``target``."""
    observation, _ = env.reset(options={"target": target})
    done = False
    while not done:
        action, _ = model.predict(observation, deterministic=True)
        observation, _, done, _, info = env.step(action)
    return info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default="mnist-ae")
    parser.add_argument("--tasks", default="mnist-ae,mnist-classifier,diffusion-sorption")
    parser.add_argument("--targets", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7")
    parser.add_argument("--target-range", default="0.05,0.75")
    parser.add_argument("--steps", type=int, default=20_000, help="PPO environment steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    targets = [float(t) for t in args.targets.split(",")]
    target_range = tuple(float(t) for t in args.target_range.split(","))
    started = time.perf_counter()
    trained_on = args.train.split(",")
    envs = [sb3_sequential_env(task, target_range) for task in trained_on]
    training = envs[0] if len(envs) == 1 else TaskMixture(envs)
    rollout = min(2048, max(args.steps, 64))  # SB3's default rollout, shorter for short runs
    model = PPO("MultiInputPolicy", training, seed=args.seed, device="cpu", n_steps=rollout,
                batch_size=min(64, rollout),
                policy_kwargs={"features_extractor_class": GroupSetExtractor})  # fmt: skip
    model.set_logger(Logger(folder=None, output_formats=[]))  # no empty /tmp/SB3-<date> folder
    model.learn(args.steps, callback=_Bar(-(-args.steps // rollout) * rollout))  # whole rollouts
    print(f"PPO trained on {args.train}: {model.num_timesteps} steps, "
          f"{time.perf_counter() - started:.0f} s with building the tasks\n")  # fmt: skip
    for task in args.tasks.split(","):
        env = sb3_sequential_env(task, target_range)
        asked = transfer_policy(model, env)
        one_shot = PruneEnv(task, granularity="channel")
        ppo = f"PPO ({'trained here' if task in trained_on else 'zero-shot'})"
        rows = {name: [] for name in (ppo, "lamp", "norm", "uniform")}
        for target in targets:
            info = answer(asked, env, target)
            rows[ppo].append((info["metric"], info["feasible"]))
            for name in ("lamp", "norm", "uniform"):
                one_shot.reset(options={"target": target})
                result = make_agent(name, progress=False).run(one_shot)
                rows[name].append((result.metric, result.feasible))
        print(f"{task} ({one_shot.task.metric}, dense {one_shot.dense_metric:.4g}; "
              f"{len(one_shot.groups)} groups):\n")  # fmt: skip
        print("| solver | " + " | ".join(f"{t:.0%}" for t in targets) + " |")
        print("|---|" + "---|" * len(targets))
        for name, cells in rows.items():
            text = [f"{metric:.4g}{'' if feasible else '*'}" for metric, feasible in cells]
            print(f"| {name} | " + " | ".join(text) + " |")
        print()
    print(f"{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
