"""How good is the shipped TD-MPC agent? Its return beside a random policy and a classical
energy-shaping swing-up with LQR balance, over the same 20 fixed-seed episodes.

    python examples/tdmpc_anchors.py
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from prunegym.tasks.tdmpc.agent import TDMPC
from prunegym.tasks.tdmpc.controllers import energy_lqr_controller, random_controller
from prunegym.tasks.tdmpc.episodes import EpisodeRunner, network_controller
from prunegym.tasks.tdmpc_pendulum import load_world_model


@dataclass
class Args:
    checkpoint: str | None = None
    """TD-MPC checkpoint (None: the shipped agent)."""
    episodes: int = 20
    """Fixed-seed episodes."""
    first_seed: int = 40_000
    """Seed of the first episode."""
    plan: bool = True
    """Also run the agent with MPPI planning."""


def main(args: Args) -> dict[str, tuple[float, float]]:
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
            returns = runner.run(controller)
            results[name] = (float(returns.mean()), float(returns.std()))
    low = results["random policy"][0]
    high = results["energy shaping + LQR (reads the true state)"][0]
    print(f"| controller | mean return ({args.episodes} episodes) | std | of the way |")
    print("|---|---|---|---|")
    for name, (mean, std) in results.items():
        print(f"| {name} | {mean:.1f} | {std:.1f} | {(mean - low) / (high - low):.1%} |")
    return results


if __name__ == "__main__":
    main(Args())
