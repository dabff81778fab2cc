"""How far do the task metrics move on another CPU? Each task's dense metric and the metric at
uniform c (0.3 unless ``--coefficient``), evaluated under several float-kernel settings that
stand in for other CPUs:

- native: this machine's kernels;
- avx2: PyTorch's AVX2 kernels, MKL and oneDNN limited to AVX2 (an AVX2-only x86 CPU);
- portable: PyTorch's portable (non-vectorised) kernels, MKL and oneDNN at AVX2;
- one thread: ``torch.set_num_threads(1)`` with the portable kernels (other reduction orders).

    python benchmarks/cpu_kernels.py [--tasks mnist-ae,toy] [--coefficient 0.3]
        [--test-episodes 1000]

Prints, per task and setting, the largest relative difference from native, and whether the
pruned network is native's: the same channel order in every group (``same channels``) and
the largest absolute difference of its masked, compensated weights. Feed-forward tasks are
validated to ``rtol = 1e-4`` (``prunegym validate``); closed-loop tasks, whose trajectories
amplify last-bit differences, against their 95 % intervals instead. For those (tasks with test
episodes) it also prints the test metric at c, on ``--test-episodes`` held-out episodes (the
task's default unless given), and its paired difference from native's, episode by episode.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SETTINGS = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "portable": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                 "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "one thread": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                   "ONEDNN_MAX_CPU_ISA": "AVX2", "PRUNEGYM_THREADS": "1"},
}  # fmt: skip


def measure(tasks: list[str], coefficient: float, test_episodes: int | None, out: Path) -> dict:
    """In this process, per task: the dense metric, the metric at uniform ``coefficient``,
    the channel orders and the test values where the task has them; the masked weights go to
    ``out/TASK.pt``."""
    import numpy as np
    import torch

    from prunegym.envs.prune_env import PruneEnv
    from prunegym.tasks import make_task, task_class

    if os.environ.get("PRUNEGYM_THREADS"):
        torch.set_num_threads(int(os.environ["PRUNEGYM_THREADS"]))
    found = {}
    for name in tasks:
        takes = "test_episodes" in inspect.signature(task_class(name)).parameters
        task = make_task(
            name, **({"test_episodes": test_episodes} if test_episodes and takes else {})
        )
        env = PruneEnv(task, batching="sequential")
        coefficients = np.full(len(env.groups), coefficient, dtype=np.float32)
        _, _, _, _, info = env.step(coefficients)
        found[name] = {
            "dense": env.dense_metric,
            "pruned": info["metric"],
            "orders": [order.tolist() for order in env.pruner.orders],
        }
        torch.save(env.model.state_dict(), out / f"{name}.pt")
        if getattr(task, "test_episodes", 0):
            found[name]["test"] = env.test_evaluation(coefficients)[1].tolist()
    found["capability"] = torch.backends.cpu.get_cpu_capability()
    return found


def _weight_difference(first: Path, second: Path) -> float:
    """Largest absolute difference between the state dicts saved in two files."""
    import torch

    first = torch.load(first, map_location="cpu", weights_only=True)
    second = torch.load(second, map_location="cpu", weights_only=True)
    return max(float((first[k].double() - second[k].double()).abs().max()) for k in first)


def main() -> None:
    from prunegym.tasks import task_names

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shipped = [name for name in task_names() if name != "image-classification"]  # a folder
    parser.add_argument("--tasks", default=",".join(shipped))
    parser.add_argument("--coefficient", type=float, default=0.3)
    parser.add_argument("--test-episodes", type=int, default=None)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    tasks = args.tasks.split(",")
    if args.child:
        print(json.dumps(measure(tasks, args.coefficient, args.test_episodes, args.child)))
        return
    with tempfile.TemporaryDirectory(prefix="cpu_kernels_") as folder:
        report(args, tasks, _run_settings(args, Path(folder)), Path(folder))


def _run_settings(args, folder: Path) -> dict:
    """Run the measurement once per setting, each in a fresh process writing to ``folder``."""
    runs = {}
    for label, variables in SETTINGS.items():
        print(f"running {label}...", file=sys.stderr, flush=True)
        (folder / label).mkdir()
        command = [sys.executable, __file__, "--child", str(folder / label), "--tasks", args.tasks]
        command += ["--coefficient", str(args.coefficient)]
        if args.test_episodes:
            command += ["--test-episodes", str(args.test_episodes)]
        env = {**os.environ, **variables, "PYTHONWARNINGS": "ignore"}
        output = subprocess.run(command, env=env, capture_output=True, text=True)
        if output.returncode:
            raise SystemExit(f"the {label} run failed:\n{output.stderr[-3000:]}")
        runs[label] = json.loads(output.stdout.strip().splitlines()[-1])
    return runs


def report(args, tasks: list[str], runs: dict, folder: Path) -> None:
    """Print both tables (``folder``: the runs' saved weights)."""
    from prunegym.tasks.intervals import mean_ci95, paired_difference

    native = runs["native"]
    pruned = f"c={args.coefficient:g}"
    print(
        f"{'task':<20} {'setting':<11} {'kernels':<8} {'dense':>14} {pruned:>14} "
        f"{'max rel. diff':>13} {'same channels':>13} {'weights diff':>12}"
    )
    for name in tasks:
        for label, run in runs.items():
            ours, theirs = run[name], native[name]
            diffs = [
                abs(ours[k] - theirs[k]) / max(abs(theirs[k]), 1e-30) for k in ("dense", "pruned")
            ]
            same = "yes" if ours["orders"] == theirs["orders"] else "no"
            weights = _weight_difference(
                folder / label / f"{name}.pt", folder / "native" / f"{name}.pt"
            )
            print(
                f"{name:<20} {label:<11} {run['capability']:<8} {ours['dense']:>14.8g} "
                f"{ours['pruned']:>14.8g} {max(diffs):>13.2e} {same:>13} {weights:>12.2e}"
            )
    for name in (name for name in tasks if "test" in native[name]):
        episodes = len(native[name]["test"])
        print(f"\n{name}: test metric at {pruned} on {episodes} held-out episodes (95 % intervals)")
        for label, run in runs.items():
            mean, half = mean_ci95(run[name]["test"])
            line = f"  {label:<11} {mean:10.1f} ± {half:5.1f}"
            if label != "native":
                difference, width = paired_difference(run[name]["test"], native[name]["test"])
                line += f"   minus native: {difference:+7.1f} ± {width:5.1f}"
            print(line)


if __name__ == "__main__":
    main()
