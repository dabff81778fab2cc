"""PSNR of the MNIST autoencoder at uniform c = 0.2·1 for every criterion and compensation.

    python benchmarks/criteria_table.py [--level 0.2]

Prints a markdown table: rows are criteria, columns compensations, cells PSNR in dB; the exact
sparsity of the uniform vector is the same in every cell.
"""

from __future__ import annotations

import argparse

import numpy as np
from tqdm import tqdm

from prunegym.envs.prune_env import PruneEnv
from prunegym.pruning import COMPENSATIONS, CRITERIA
from prunegym.tasks import make_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--level", type=float, default=0.2, help="uniform coefficient c")
    args = parser.parse_args()
    task = make_task("mnist-ae")
    cells, sparsity, dense, skipped = {}, None, None, ""
    with tqdm(total=len(CRITERIA) * len(COMPENSATIONS), desc="criteria") as bar:
        for criterion in CRITERIA:
            for compensation in COMPENSATIONS:
                bar.update(1)
                try:
                    env = PruneEnv(task, criterion=criterion, compensation=compensation)
                except ValueError as error:  # e.g. bn-scale on a model without BatchNorm
                    cells[criterion, compensation] = None
                    skipped = f"{criterion}: {error}"
                    continue
                env.reset(seed=0)
                _, _, _, _, info = env.step(np.full(len(env.groups), args.level))
                cells[criterion, compensation] = info["psnr"]
                sparsity, dense = info["sparsity"], info["dense_metric"]
    print(f"PSNR (dB) at c = {args.level}·1, exact sparsity {sparsity:.4f}, dense {dense:.2f} dB\n")
    print("| criterion | " + " | ".join(COMPENSATIONS) + " |")
    print("|---|" + "---|" * len(COMPENSATIONS))
    for criterion in CRITERIA:
        if any(cells[criterion, c] is None for c in COMPENSATIONS):
            continue
        row = " | ".join(f"{cells[criterion, c]:.2f}" for c in COMPENSATIONS)
        print(f"| {criterion} | {row} |")
    if skipped:
        print(f"\nnot applicable here: {skipped}")


if __name__ == "__main__":
    main()
