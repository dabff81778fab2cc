"""Do the batched paths reproduce sequential evaluation? Every task, on one device.

    python benchmarks/batched_equality.py [--device cpu] [--candidates 8] [--test-episodes 100]

- Feed-forward tasks: ``prunegym.check_task`` (every batched path the task offers against
  ``evaluate`` of the masked model, the dense model and ``--candidates`` random masks); printed
  is the largest relative difference over every metric and candidate.
- TD-MPC, episodes as tensors (``episode_engine="torch"``): the dense agent's search returns
  against the Gymnasium-wrapped episodes (largest absolute difference), then with the first
  convolution from its table (``"torch+table"``) against the exact tensor episodes on
  ``--test-episodes`` held-out episodes (paired mean difference and its 95 % interval), and
  the ``batched`` candidates against ``sequential`` ones (paired over the candidates' mean
  search returns).
"""

from __future__ import annotations

import argparse

import numpy as np

from prunegym.envs import check_task
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks import make_task
from prunegym.tasks.devices import device_name, resolve_device
from prunegym.tasks.intervals import paired_difference
from prunegym.tasks.tdmpc.episodes import network_controller

TASKS = ["toy", "mnist-ae", "mnist-classifier", "mnist-convnet", "diffusion-sorption"]


def tdmpc(device, candidates: int, test_episodes: int) -> None:
    exact = make_task("tdmpc-pendulum", device=device, episode_engine="torch",
                      test_episodes=test_episodes)  # fmt: skip
    model = exact.load_model()
    tensor = exact.episode_returns(model)
    wrapped = exact.runner.run_wrapped(
        network_controller(lambda frames: model.pi(model.encode(frames)), device)
    )
    print(f"tdmpc-pendulum: tensor episodes vs Gymnasium-wrapped, {len(tensor)} search "
          f"episodes: largest |difference| {np.abs(tensor - wrapped).max():.3g}")  # fmt: skip
    table = make_task("tdmpc-pendulum", device=device, episode_engine="torch+table",
                      test_episodes=test_episodes)  # fmt: skip
    mean, half = paired_difference(table.test_episode_metrics(model),
                                   exact.test_episode_metrics(model))  # fmt: skip
    print(
        f"tdmpc-pendulum: first-conv table − exact, {test_episodes} test episodes: "
        f"{mean:+.2f} ± {half:.2f} (95 %)"
    )
    batched = PruneEnv(exact, batching="batched", cache=False)
    sequential = PruneEnv(exact, batching="sequential", cache=False)
    rows = np.random.default_rng(0).uniform(0.0, 0.4, (candidates, len(batched.groups)))
    a = np.array([info["return"] for info in batched.evaluate_batch(rows)])
    b = np.array([info["return"] for info in sequential.evaluate_batch(rows)])
    mean, half = paired_difference(a, b)
    print(
        f"tdmpc-pendulum: batched − sequential, mean search return of {candidates} "
        f"candidates: {mean:+.2f} ± {half:.2f} (95 %); equal to 1e-6 for "
        f"{int(np.sum(np.abs(a - b) < 1e-6))} of them"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--test-episodes", type=int, default=100)
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"# {device} ({device_name(device)})")
    for name in TASKS:
        report = check_task(make_task(name, device=device), candidates=args.candidates)
        print(f"{name}: paths {', '.join(report['batched_paths'])}; largest relative "
              f"difference from evaluate {report['largest_relative_difference']:.3g}")  # fmt: skip
    tdmpc(device, args.candidates, args.test_episodes)


if __name__ == "__main__":
    main()
