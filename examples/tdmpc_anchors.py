"""How good is the shipped TD-MPC agent? Its return beside a random policy and a classical
energy-shaping swing-up with LQR balance, over the same 100 fixed-seed episodes (the task's
held-out test seeds), with 95 % intervals and the paired difference from the classical
controller.

    python examples/tdmpc_anchors.py
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from prunegym.tasks.intervals import describe_difference, mean_ci95, paired_difference
from prunegym.tasks.tdmpc.agent import TDMPC
from prunegym.tasks.tdmpc.controllers import energy_lqr_controller, random_controller
from prunegym.tasks.tdmpc.episodes import EpisodeRunner, network_controller
from prunegym.tasks.tdmpc_pendulum import load_world_model


@dataclass
class Args:
    checkpoint: str | None = None
    """TD-MPC checkpoint (None: the shipped agent)."""
    episodes: int = 100
    """Fixed-seed episodes."""
    first_seed: int = 40_000
    """Seed of the first episode."""
    plan: bool = False
    """Also run the agent with MPPI planning (slow: about 5 s an episode)."""


def main(args: Args) -> dict[str, np.ndarray]:
    model = load_world_model(args.checkpoint)
    runner = EpisodeRunner(list(range(args.first_seed, args.first_seed + args.episodes)))
    controllers = {
        "random policy": random_controller(0),
        "energy shaping + LQR (reads the true state)": energy_lqr_controller(),
        "TD-MPC, policy prior π": network_controller(lambda obs: model.pi(model.encode(obs))),
    }
    if args.plan:
        planner = TDMPC(model.config, seed=0)
        planner.model = model
        controllers["TD-MPC, MPPI planning"] = network_controller(
            lambda obs: planner.act(obs, plan=True)
        )
    results = {}
    with torch.no_grad():
        for name, controller in controllers.items():
            results[name] = runner.run(controller)
    classical = "energy shaping + LQR (reads the true state)"
    low, high = results["random policy"].mean(), results[classical].mean()
    print(
        f"| controller | mean return ({args.episodes} episodes, 95 % interval) | std | "
        "paired difference from the classical controller | of the way |"
    )
    print("|---|---|---|---|---|")
    for name, returns in results.items():
        mean, half_width = mean_ci95(returns)
        versus = (
            "–" if name == classical
            else describe_difference(*paired_difference(returns, results[classical]))
        )  # fmt: skip
        print(
            f"| {name} | {mean:.1f} ± {half_width:.1f} | {returns.std(ddof=1):.1f} | {versus} | "
            f"{(mean - low) / (high - low):.1%} |"
        )
    return results


if __name__ == "__main__":
    main(Args())
