"""Step the MNIST autoencoder environment with growing coefficients and watch the reward.

    python examples/watch_reward.py

Prints, for uniform coefficients from 0 to 0.6, the reward, PSNR and exact sparsity at a 20 %
target, then the same for pruning only the coupling (latent) group versus only the encoder's
first group, and saves a reconstruction grid to ``watch_reward.png``.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

import prunegym  # noqa: F401  (registers the environment ids)
from prunegym.results.plots import save_reconstruction_grid


@dataclass
class Args:
    target: float = 0.2
    """Sparsity target (fraction of all parameters)."""
    criterion: str = "compensated"
    """Channel ranking inside each group."""
    compensation: str = "mean"
    """Bias compensation."""
    plot: str = "watch_reward.png"
    """Where to save the reconstructions."""


def main(args: Args) -> None:
    env = gym.make(
        "prunegym/MNISTAutoencoder-v0",
        target=args.target,
        criterion=args.criterion,
        compensation=args.compensation,
    )
    _, info = env.reset(seed=0)
    groups = env.unwrapped.groups
    print(f"{len(groups)} groups: {[g.label for g in groups]}; dense PSNR {info['psnr']:.2f} dB")
    print(f"{'c':>5} {'reward':>8} {'psnr':>7} {'sparsity':>9} feasible")
    for level in np.linspace(0.0, 0.6, 7):
        _, reward, _, _, info = env.step(np.full(len(groups), level, np.float32))
        print(
            f"{level:5.2f} {reward:8.3f} {info['psnr']:7.2f} {info['sparsity']:9.4f} "
            f"{info['feasible']}"
        )
    for index in (0, len(groups) - 1):
        action = np.zeros(len(groups), np.float32)
        action[index] = 0.5
        _, reward, _, _, info = env.step(action)
        print(
            f"only {groups[index].label:<18} c=0.5: psnr {info['psnr']:.2f} dB, "
            f"sparsity {info['sparsity']:.4f}, reward {reward:.3f}"
        )

    task = env.unwrapped.task
    env.reset()
    dense = task.reconstruct(env.unwrapped.model)
    env.step(np.full(len(groups), 0.3, np.float32))
    pruned = task.reconstruct(env.unwrapped.model)  # read after the step: it holds its masks
    rows = {"original": task.eval_images, "dense": dense, "c = 0.3": pruned}
    print(f"saved {save_reconstruction_grid(args.plot, rows)}")


if __name__ == "__main__":
    main(Args())
