"""Return of the shipped TD-MPC agent with its policy prior π and with MPPI planning at
several horizons, on the same fixed-seed episodes, with the wall time of each.

    python benchmarks/tdmpc_planning.py [--episodes 8] [--horizons 1 2 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from prunegym.tasks.intervals import describe_difference, mean_ci95, paired_difference
from prunegym.tasks.tdmpc.agent import TDMPC
from prunegym.tasks.tdmpc.episodes import EpisodeRunner, network_controller
from prunegym.tasks.tdmpc_pendulum import EVALUATION_SEEDS_START, load_world_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--horizons", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    model = load_world_model()
    runner = EpisodeRunner(
        list(range(EVALUATION_SEEDS_START, EVALUATION_SEEDS_START + args.episodes))
    )
    runs = {"policy prior π": lambda obs: model.pi(model.encode(obs))}
    for horizon in args.horizons:
        planner = TDMPC(model.config, seed=0)
        planner.model = model
        runs[f"MPPI, horizon {horizon}"] = lambda obs, p=planner, h=horizon: p.act(
            obs, plan=True, horizon=h
        )
    print(
        f"| controller | mean return ({args.episodes} episodes, 95 % interval) | "
        "paired difference from π | seconds |"
    )
    print("|---|---|---|---|")
    prior = None
    with torch.no_grad():
        for name, act in runs.items():
            started = time.perf_counter()
            returns = runner.run(network_controller(act))
            seconds = time.perf_counter() - started
            prior = returns if prior is None else prior
            mean, half_width = mean_ci95(returns)
            versus = "–" if returns is prior else describe_difference(
                *paired_difference(returns, prior)
            )  # fmt: skip
            print(f"| {name} | {mean:.1f} ± {half_width:.1f} | {versus} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
