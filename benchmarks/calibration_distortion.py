"""How long the calibration screen's distortion takes per mask: batched against one at a time.

    python benchmarks/calibration_distortion.py [--tasks toy,mnist-classifier,...]
        [--rows 8,40] [--repeats 5]

For each task (channel granularity), K random allocations (distinct masks) are scored on the
calibration batches both ways :class:`~prunegym.envs.evaluation.calibration.CalibrationDistortion`
knows: K candidates per forward, the masks acting on activations (what an environment with
``batching="batched"``, a GPU's default, does), and one mask at a time, each written into the
model (the CPU's default). The two are timed in turn, ``--repeats`` times; the medians are
printed in milliseconds per mask, with their ratio and the largest relative difference between
the two paths' values ("fell back" where the batched path cannot serve the task). K = 8 is
what the screen scores for one answer; K = 40, what ``proposals=8`` scores for one batch of
five evaluations.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from prunegym.envs.evaluation.calibration import CalibrationDistortion
from prunegym.envs.prune_env import PruneEnv

TASKS = "toy,mnist-classifier,diffusion-sorption,mnist-ae,mnist-convnet,tdmpc-pendulum"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=TASKS)
    parser.add_argument("--rows", default="8,40", help="masks per call")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print("| task | masks per call | batched, ms per mask | one at a time, ms per mask | "
          "one at a time / batched | largest relative difference |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name in args.tasks.split(","):
        env = PruneEnv(name, granularity="channel")
        core = env.unwrapped
        model, precise = core.evaluator.model, core.evaluator.precise
        batched, alone = (
            CalibrationDistortion(core.task, model, core.pruner, precise, batched=way)
            for way in (True, False)
        )
        rng = np.random.default_rng(0)
        for count in (int(k) for k in args.rows.split(",")):
            drawn = rng.uniform(0, 0.8, (count, len(core.groups)))
            counts = np.unique(core.pruner.counts(drawn), axis=0)
            values = {"batched": batched(counts), "alone": alone(counts)}  # warm: dense outputs
            seconds: dict[str, list[float]] = {"batched": [], "alone": []}
            for _ in range(args.repeats):
                for way, score in (("batched", batched), ("alone", alone)):
                    started = time.perf_counter()
                    score(counts)
                    seconds[way].append(time.perf_counter() - started)
            per = {way: 1e3 * statistics.median(s) / len(counts) for way, s in seconds.items()}
            gap = np.abs(values["batched"] - values["alone"]) / np.maximum(values["alone"], 1e-30)
            ratio = f"{per['alone'] / per['batched']:.1f}" + " (fell back)" * (not batched._masks)
            print(f"| {name} | {len(counts)} | {per['batched']:.2f} | {per['alone']:.2f} | "
                  f"{ratio} | {gap.max():.1e} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
