"""How far do the task metrics move on another CPU? Each task's dense metric and the metric at
uniform c = 0.3, evaluated under several float-kernel settings that stand in for other CPUs:

- native: this machine's kernels;
- avx2: PyTorch's AVX2 kernels, MKL and oneDNN limited to AVX2 (an AVX2-only x86 CPU);
- portable: PyTorch's portable (non-vectorised) kernels, MKL and oneDNN at AVX2;
- one thread: ``torch.set_num_threads(1)`` with the portable kernels (other reduction orders).

    python benchmarks/cpu_kernels.py [--tasks mnist-ae,toy]

Prints, per task and setting, the largest relative difference from native. Feed-forward tasks
are validated to ``rtol = 1e-4`` (``prunegym validate``); closed-loop tasks, whose trajectories
amplify last-bit differences, against their 95 % intervals instead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

SETTINGS = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "portable": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                 "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "one thread": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                   "ONEDNN_MAX_CPU_ISA": "AVX2", "PRUNEGYM_THREADS": "1"},
}  # fmt: skip


def measure(tasks: list[str]) -> dict:
    """In this process: ``{task: {"dense": metric, "c=0.3": metric, "capability": ...}}``."""
    import numpy as np
    import torch

    from prunegym.envs.prune_env import PruneEnv

    if os.environ.get("PRUNEGYM_THREADS"):
        torch.set_num_threads(int(os.environ["PRUNEGYM_THREADS"]))
    found = {}
    for name in tasks:
        env = PruneEnv(name, batching="sequential")
        _, _, _, _, info = env.step(np.full(len(env.groups), 0.3))
        found[name] = {"dense": env.dense_metric, "c=0.3": info["metric"]}
    found["capability"] = torch.backends.cpu.get_cpu_capability()
    return found


def main() -> None:
    from prunegym.tasks import task_names

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(task_names()))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    tasks = args.tasks.split(",")
    if args.child:
        print(json.dumps(measure(tasks)))
        return
    runs = {}
    for label, variables in SETTINGS.items():
        print(f"running {label}...", file=sys.stderr, flush=True)
        command = [sys.executable, __file__, "--child", "--tasks", args.tasks]
        env = {**os.environ, **variables, "PYTHONWARNINGS": "ignore"}
        output = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        runs[label] = json.loads(output.stdout.strip().splitlines()[-1])
    native = runs["native"]
    print(
        f"{'task':<20} {'setting':<11} {'kernels':<8} {'dense':>14} {'c=0.3':>14} "
        f"{'max rel. diff':>13}"
    )
    for name in tasks:
        for label, run in runs.items():
            diffs = [
                abs(run[name][k] - native[name][k]) / max(abs(native[name][k]), 1e-30)
                for k in ("dense", "c=0.3")
            ]
            print(
                f"{name:<20} {label:<11} {run['capability']:<8} {run[name]['dense']:>14.8g} "
                f"{run[name]['c=0.3']:>14.8g} {max(diffs):>13.2e}"
            )


if __name__ == "__main__":
    main()
