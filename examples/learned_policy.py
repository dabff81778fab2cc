"""Train one Stable-Baselines3 policy that prunes to any target between 10 % and 50 %.

    python examples/learned_policy.py

Episode mode: every episode draws a sparsity target, the observation carries it, and the
policy answers with the coefficients. After training, the policy is asked for targets
0.1 … 0.5 and each answer is evaluated in the environment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prunegym import PruneEnv
from prunegym.agents import SB3Agent


@dataclass
class Args:
    task: str = "mnist-ae"
    """Task name."""
    algo: str = "TD3"
    """PPO, SAC or TD3."""
    steps: int = 3000
    """Training evaluations (environment steps)."""
    low: float = 0.1
    """Smallest training target."""
    high: float = 0.5
    """Largest training target."""
    progress: bool = True
    """Show a progress bar."""


def main(args: Args) -> list[dict]:
    env = PruneEnv(args.task, target=0.3)
    agent = SB3Agent(args.algo, target_range=(args.low, args.high), progress=args.progress)
    result = agent.run(env, args.steps)
    print(f"trained {args.algo} for {result.evaluations} steps in {result.wall_seconds:.1f} s")
    name = result.metric_name
    print(f"| target | sparsity | {name} | dense {name} | coefficients |")
    print("|---|---|---|---|---|")
    rows = []
    for target in np.linspace(args.low, args.high, 5):
        coefficients = agent.predict(float(target))
        env.reset(options={"target": float(target)})
        _, _, _, _, info = env.step(coefficients)
        values = "[" + ", ".join(f"{c:.3f}" for c in coefficients) + "]"
        print(
            f"| {target:.2f} | {info['sparsity']:.4f} | {info['metric']:.4g} | "
            f"{info['dense_metric']:.4g} | {values} |"
        )
        rows.append({"target": float(target), **info, "coefficients": coefficients.tolist()})
    return rows


if __name__ == "__main__":
    main(Args())
