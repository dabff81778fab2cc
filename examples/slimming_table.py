"""Network slimming and its proximal variant against l2 and Taylor, at matched channel sparsity.

    python examples/slimming_table.py [--lam 0.1] [--proximal-lam 1.0] [--epochs 4]
                                      [--sparsity 0.5] [--compensation none|mean]

Starts from the shipped MNIST convnet (``mnist-convnet``). Slimming: SGD sparsity training on
``loss + λ·Σ|γ|`` (subgradient, or proximal soft-thresholding), then the channels with the
smallest ``|γ|`` over both convolution groups are removed (Torch-Pruning's ``bn-scale``
criterion, one global threshold as in Liu et al.). ``l2`` and ``taylor`` prune the shipped
model with the same number of channels per group. Every method removes the same fraction of
the 48 convolution channels; the table gives test accuracy right after pruning and after one
epoch of fine-tuning with fixed masks, and the exact parameter sparsity. The proximal variant
gets its own λ: its shrinkage ``lr·λ`` per step is not amplified by SGD's momentum as the
subgradient's is, so it needs a larger λ to shrink ``γ`` as far in the same 4 epochs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks.fitting import batchnorm_layers, finetune, slimming
from prunegym.tasks.mnist_convnet import MNISTConvNetTask, cross_entropy, save_convnet


def _global_gamma_coefficients(env: PruneEnv, fraction: float) -> np.ndarray:
    """Per-group coefficients that remove the ``fraction`` of all conv channels with the
    smallest |γ| (one threshold over every group, as network slimming does)."""
    modules = dict(env.model.named_modules())
    gammas = []
    for group in env.groups:
        norms = [modules[n] for n in group.modules if isinstance(modules[n], torch.nn.BatchNorm2d)]
        gammas.append(norms[0].weight.detach().abs())
    threshold_rank = int(round(fraction * sum(len(g) for g in gammas)))
    owner = torch.cat([torch.full((len(g),), i) for i, g in enumerate(gammas)])
    pruned = owner[torch.argsort(torch.cat(gammas), stable=True)[:threshold_rank]]
    counts = np.bincount(pruned.numpy(), minlength=len(gammas))
    return np.minimum(counts / env.channels, 0.95)


def _fine_tuned_accuracy(env: PruneEnv, epochs: int) -> float:
    """Accuracy after ``epochs`` of Adam with the step's zeroed weights held at zero."""
    import copy

    model = copy.deepcopy(env.model)
    masks = {p: p != 0 for p in model.parameters()}  # everything the channel masks zeroed
    finetune(model, masks, epochs, env.task.training_batches, cross_entropy)
    return env.task.evaluate(model)["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lam", type=float, default=0.1, help="L1 weight on |γ| (subgradient)")
    parser.add_argument("--proximal-lam", type=float, default=1.0, help="λ of proximal slimming")
    parser.add_argument("--compensation", default="none", choices=["none", "mean", "optimal"])
    parser.add_argument("--epochs", type=int, default=4, help="sparsity-training epochs")
    parser.add_argument("--sparsity", type=float, default=0.5, help="fraction of channels")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for method in ("slimming", "proximal slimming", "l2", "taylor"):
            started = time.perf_counter()
            task = MNISTConvNetTask()
            zero_gammas = 0
            if "slimming" in method:
                model = task.build_model()
                proximal = method.startswith("proximal")
                lam = args.proximal_lam if proximal else args.lam
                slimming(model, lam, args.epochs, task.training_batches, cross_entropy,
                         proximal=proximal)  # fmt: skip
                zero_gammas = sum(int((b.weight == 0).sum()) for b in batchnorm_layers(model))
                path = Path(folder) / f"{method}.pt"
                save_convnet(path, model, {"lam": args.lam, "epochs": args.epochs})
                task = MNISTConvNetTask(checkpoint=path)
                env = PruneEnv(task, criterion="bn-scale", compensation=args.compensation)
                coefficients = _global_gamma_coefficients(env, args.sparsity)
            else:
                env = PruneEnv(task, criterion=method, compensation=args.compensation)
                coefficients = np.full(len(env.groups), args.sparsity)
            before = env.dense_metric
            _, _, _, _, info = env.step(coefficients)
            channels = int(np.sum(info["pruned_channels"]))
            rows.append((method, before, info["accuracy"], _fine_tuned_accuracy(env, 1),
                         channels, int(env.channels.sum()), info["sparsity"], zero_gammas,
                         time.perf_counter() - started))  # fmt: skip
    print("| method | accuracy before pruning | pruned | after 1 epoch fine-tuning | "
          "channels removed | parameter sparsity | γ exactly 0 | seconds |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for method, before, after, tuned, channels, total, sparsity, zeros, seconds in rows:
        print(f"| {method} | {before:.3f} | {after:.3f} | {tuned:.3f} | {channels}/{total} | "
              f"{sparsity:.3f} | {zeros} | {seconds:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
