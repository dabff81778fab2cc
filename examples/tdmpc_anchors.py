"""How good is the shipped TD-MPC agent, and how good can a pendulum controller get? Returns over
the same fixed-seed episodes (the task's held-out test seeds) for a random policy, the shipped
agent, a classical energy-shaping swing-up with LQR balance, and cross-entropy planning over
Pendulum-v1's exact equations (both read the true state), with 95 % intervals and the paired
difference from the classical controller.

    python examples/tdmpc_anchors.py [--episodes 100] [--results DIR ...]

``--results`` adds pruned agents: the folders (or their ``result.json``) that ``prunegym solve
tdmpc-pendulum ... --out DIR`` writes, scored on as many test episodes (``--task-option
test_episodes=N``), so each row is paired with the controllers on the same seeds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from prunegym.agents.result import Result
from prunegym.tasks.intervals import describe_difference, mean_ci95, paired_difference
from prunegym.tasks.tdmpc.agent import TDMPC
from prunegym.tasks.tdmpc.controllers import (
    energy_lqr_controller,
    planning_controller,
    random_controller,
)
from prunegym.tasks.tdmpc.episodes import EpisodeRunner, network_controller
from prunegym.tasks.tdmpc_pendulum import TEST_SEEDS_START, load_world_model

CLASSICAL = "energy shaping + LQR (reads the true state)"


def _pruned_returns(path: str, episodes: int) -> tuple[str, np.ndarray]:
    """A label and the per-episode test returns stored in result file ``path`` (or in
    ``path/result.json``)."""
    file = Path(path) / "result.json" if Path(path).is_dir() else Path(path)
    if not file.is_file():
        raise SystemExit(f"{path}: no result file (give what `prunegym solve --out` wrote)")
    result = Result.load(file)
    if result.task != "tdmpc-pendulum" or len(result.test_values) != episodes:
        raise SystemExit(
            f"{path}: needs a tdmpc-pendulum result scored on {episodes} test episodes, got "
            f"{result.task} with {len(result.test_values)}"
        )
    return f"pruned {result.target:.0%}, `{result.solver}`", np.asarray(result.test_values)


def main() -> dict[str, np.ndarray]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="TD-MPC checkpoint (default: the shipped agent)")
    parser.add_argument("--episodes", type=int, default=100, help="test seeds 40,000 on")
    parser.add_argument("--plan", action="store_true", help="also the agent with MPPI (slow)")
    parser.add_argument("--results", nargs="*", default=[], help="pruned agents' result files")
    args = parser.parse_args()
    if args.episodes < 2:
        raise SystemExit(f"--episodes must be >= 2 (for an interval), got {args.episodes}")
    pruned = dict(_pruned_returns(path, args.episodes) for path in args.results)  # fail early
    model = load_world_model(args.checkpoint)
    runner = EpisodeRunner(list(range(TEST_SEEDS_START, TEST_SEEDS_START + args.episodes)))
    repeat = runner.config.action_repeat
    controllers = {
        "random policy": random_controller(0),
        CLASSICAL: energy_lqr_controller(),
        "planning with the exact equations (reads the true state)": planning_controller(
            repeat=repeat
        ),
        "TD-MPC, policy prior π": network_controller(lambda obs: model.pi(model.encode(obs))),
    }
    if args.plan:
        planner = TDMPC(model.config, seed=0)
        planner.model = model
        controllers["TD-MPC, MPPI planning"] = network_controller(
            lambda obs: planner.act(obs, plan=True)
        )
    results, seconds = {}, {}
    with torch.no_grad():
        for name, controller in controllers.items():
            started = time.perf_counter()
            with tqdm(desc=name.split(" (")[0], unit="decision", leave=False) as bar:

                def counted(observations, states, controller=controller, bar=bar):
                    bar.update(1)
                    return controller(observations, states)

                results[name] = runner.run(counted)
            seconds[name] = time.perf_counter() - started
    results.update(pruned)
    low, high = results["random policy"].mean(), results[CLASSICAL].mean()
    print(
        f"| controller | mean return ({args.episodes} episodes, 95 % interval) | std | "
        "paired difference from the classical controller | of the way | seconds |"
    )
    print("|---|---|---|---|---|---|")
    for name, returns in results.items():
        mean, half_width = mean_ci95(returns)
        versus = (
            "–" if name == CLASSICAL
            else describe_difference(*paired_difference(returns, results[CLASSICAL]))
        )  # fmt: skip
        print(
            f"| {name} | {mean:.1f} ± {half_width:.1f} | {returns.std(ddof=1):.1f} | {versus} | "
            f"{(mean - low) / (high - low):.1%} | "
            f"{f'{seconds[name]:.1f}' if name in seconds else '–'} |"
        )
    return results


if __name__ == "__main__":
    main()
