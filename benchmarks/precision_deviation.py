"""How far TF32 and bf16 evaluations move each task's metric from fp32, on one device.

    python benchmarks/precision_deviation.py [--device cuda] [--candidates 16]

For each task: the dense model and ``--candidates`` random coefficient vectors (uniform in
[0, 0.6] per group, seed 0) are evaluated with ``PruneEnv(precision=...)``; printed are the
largest and the mean absolute difference of the main metric from fp32, and the same relative
to the fp32 metric's spread over the candidates. TF32 changes nothing on the CPU (it only
affects CUDA matmuls and convolutions), so the CPU rows measure bf16 only. TD-MPC's returns
are closed-loop: a small change of the policy's outputs changes whole trajectories.
"""

from __future__ import annotations

import argparse

import numpy as np

from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks import make_task
from prunegym.tasks.devices import device_name, resolve_device

TASKS = ["mnist-ae", "mnist-classifier", "mnist-convnet", "diffusion-sorption", "tdmpc-pendulum"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tasks", nargs="+", default=TASKS)
    parser.add_argument("--candidates", type=int, default=16)
    args = parser.parse_args()
    device = resolve_device(args.device)
    precisions = ["fp32", "bf16"] if device.type == "cpu" else ["fp32", "tf32", "bf16"]
    print(f"# {device} ({device_name(device)}); {args.candidates} random candidates + dense")
    print(f"{'task':<20}{'metric':>8}{'precision':>10}{'max |Δ|':>12}{'mean |Δ|':>12}"
          f"{'max |Δ| / spread':>18}")  # fmt: skip
    for name in args.tasks:
        task = make_task(name, device=device)
        values = {}
        for precision in precisions:
            env = PruneEnv(task, precision=precision, cache=False)
            rng = np.random.default_rng(0)
            rows = rng.uniform(0.0, 0.6, (args.candidates + 1, len(env.groups)))
            rows[0] = 0.0
            values[precision] = np.array([i["metric"] for i in env.evaluate_batch(rows)])
        spread = float(np.ptp(values["fp32"])) or 1.0
        for precision in precisions[1:]:
            delta = np.abs(values[precision] - values["fp32"])
            print(f"{name:<20}{task.metric:>8}{precision:>10}{delta.max():>12.4g}"
                  f"{delta.mean():>12.4g}{delta.max() / spread:>18.3g}")  # fmt: skip


if __name__ == "__main__":
    main()
