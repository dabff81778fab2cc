"""Dense against exported: parameters, MACs, file size and CPU latency, measured in one run.

    python benchmarks/export_size_latency.py [--target 0.2] [--batch 256] [--repeats 200]

Prunes the MNIST autoencoder with FD momentum (compensated ranking, mean compensation) at the
target, exports the physically smaller model, saves both models as ``torch.export`` programs
and times a forward pass of each on the same fixed batch of evaluation digits.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np
import torch

from prunegym.agents import make_agent
from prunegym.envs.prune_env import PruneEnv
from prunegym.pruning.export import measure_latency, model_cost, save_exported


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=0.2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    env = PruneEnv("mnist-ae", target=args.target)
    result = make_agent("fd-momentum", progress=False).run(env)
    pruned = env.export(np.asarray(result.coefficients))
    env.reset()
    batch = env.task.eval_images[: args.batch]
    inputs = env.task.example_inputs
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, model in (("dense", env.model), ("exported", pruned)):
            path = save_exported(model, inputs, os.path.join(folder, f"{name}.pt2"))
            loaded = torch.export.load(path).module()
            macs, parameters = model_cost(model, batch)
            rows[name] = (
                parameters,
                macs,
                os.path.getsize(path),
                measure_latency(lambda m=loaded: m(batch), batch.device, args.repeats, 10),
            )
    print(
        f"FD momentum at {args.target:.0%}: sparsity {result.sparsity:.4f}, "
        f"psnr {result.metric:.2f} dB (dense {result.dense_metric:.2f})"
    )
    print("| model | parameters | MACs per sample | file bytes | latency ms |")
    print("|---|---|---|---|---|")
    for name, (parameters, macs, size, latency) in rows.items():
        print(f"| {name} | {parameters:,} | {macs:,} | {size:,} | {latency:.3f} |")
    dense, exported = rows["dense"], rows["exported"]
    print(
        f"ratios exported/dense: parameters {exported[0] / dense[0]:.3f}, MACs "
        f"{exported[1] / dense[1]:.3f}, size {exported[2] / dense[2]:.3f}, latency "
        f"{exported[3] / dense[3]:.3f}"
    )


if __name__ == "__main__":
    main()
