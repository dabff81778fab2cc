"""Fig. 1 of the elimination-compensation paper: test loss against pruning ratio on MNIST.

    python examples/reproduce_fig1.py --hidden 32 --seeds 5 --out docs/fig1   # one architecture
    python examples/reproduce_fig1.py --report docs/fig1                      # table and figure

For each seed a 784-h-h-10 PReLU MLP is trained for 15 epochs (Adam, batch 64) on the
embedded 4,000 training digits. Each criterion scores the weights on 1,000 training digits and
the lowest ``r·|W|`` weights over all layers are zeroed (``r`` = 0.1 … 0.9; elimination-
compensation adds its bias shifts, eq. 7; nonlinear its mean shifts, eq. 3). The test loss
(cross-entropy on the 1,000 test digits) is recorded right after pruning and after 15 epochs
of fine-tuning with the masks fixed. "fully-connected" is the paper's reference: a narrower
784-h'-h'-10 network with at most ``(1 − r)·|W|`` weights, trained from scratch for 15
(before) and 30 (after) epochs. Rows go to ``OUT/fig1_h<h>.jsonl``; a re-run skips done rows.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from prunegym.pruning.weight.masks import pruned_copy, weight_scores
from prunegym.tasks.data.mnist import load_mnist_split
from prunegym.tasks.fitting import finetune
from prunegym.tasks.mnist_classifier import (
    build_classifier,
    classifier_batches,
    classifier_metrics,
    cross_entropy,
    fully_connected_width,
    train_classifier,
    weight_count,
)

RATIOS = [round(0.1 * k, 1) for k in range(1, 10)]
CRITERIA = ["elimination-compensation", "magnitude", "gradient-magnitude", "random", "nonlinear"]
EPOCHS = 15


def _rows(path: Path) -> dict[tuple, dict]:
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["criterion"], r["ratio"], r["seed"]): r for r in rows}


def run(hidden: int, seeds: int, out: Path) -> None:
    torch.set_num_threads(1)  # tiny networks: one thread each, two architectures in parallel
    split = load_mnist_split(None)
    test = (split.test_images, split.test_labels)
    calibration = list(zip(split.train_images[:1000].split(250),
                           split.train_labels[:1000].split(250), strict=True))  # fmt: skip
    path = out / f"fig1_h{hidden}.jsonl"
    done = _rows(path)
    out.mkdir(parents=True, exist_ok=True)
    with path.open("a") as sink:
        for seed in range(seeds):
            dense = train_classifier(hidden, seed=seed, epochs=EPOCHS)
            baseline = classifier_metrics(dense, *test)["loss"]

            def batches(epoch, seed=seed):
                return classifier_batches(split.train_images, split.train_labels, 64, seed, epoch)

            for criterion in [*CRITERIA, "fully-connected"]:
                started = time.perf_counter()
                if criterion != "fully-connected":
                    scores, shifts = weight_scores(
                        dense, criterion, calibration, lambda m, b: m(b[0]), cross_entropy,
                        split.train_images[:256], seed,
                    )  # fmt: skip
                for ratio in RATIOS:
                    if (criterion, ratio, seed) in done:
                        continue
                    if criterion == "fully-connected":
                        width = fully_connected_width(hidden, ratio)
                        model = _train_width(width, seed, batches)
                        before = classifier_metrics(model, *test)["loss"]
                        finetune(model, {}, EPOCHS, lambda e: batches(EPOCHS + e), cross_entropy)
                        kept = weight_count(width)
                    else:
                        model, masks = pruned_copy(dense, scores, shifts, ratio)
                        before = classifier_metrics(model, *test)["loss"]
                        finetune(model, masks, EPOCHS, batches, cross_entropy)
                        kept = sum(int(m.sum()) for m in masks.values())
                    row = {
                        "hidden": hidden, "criterion": criterion, "ratio": ratio, "seed": seed,
                        "baseline": baseline, "loss_pruned": before,
                        "loss_finetuned": classifier_metrics(model, *test)["loss"],
                        "weights_kept": kept,
                    }  # fmt: skip
                    sink.write(json.dumps(row) + "\n")
                    sink.flush()
                print(f"h={hidden} seed {seed} {criterion}: {time.perf_counter() - started:.1f} s",
                      flush=True)  # fmt: skip


def _train_width(width: int, seed: int, batches) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_classifier(width)
    finetune(model, {}, EPOCHS, batches, cross_entropy)
    return model.eval()


def report(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = sorted(out.glob("fig1_h*.jsonl"))
    figure, axes = plt.subplots(len(files), 2, figsize=(11, 4.2 * len(files)), squeeze=False)
    lines = []
    for row_axes, path in zip(axes, files, strict=True):
        rows = list(_rows(path).values())
        hidden = rows[0]["hidden"]
        baseline = np.mean([r["baseline"] for r in rows if r["criterion"] == CRITERIA[0]])
        lines += [f"### 784-{hidden}-{hidden}-10 (dense test loss {baseline:.3f}, "
                  f"mean of {len({r['seed'] for r in rows})} seeds)", "",
                  "| criterion | " + " | ".join(f"{r:.1f}" for r in RATIOS) + " |",
                  "|---|" + "---|" * len(RATIOS)]  # fmt: skip
        for column, key in enumerate(("loss_pruned", "loss_finetuned")):
            axis = row_axes[column]
            for criterion in [*CRITERIA, "fully-connected"]:
                mine = [r for r in rows if r["criterion"] == criterion]
                if not mine:
                    continue
                values = [[r[key] for r in mine if r["ratio"] == ratio] for ratio in RATIOS]
                mean = np.array([np.mean(v) for v in values])
                spread = np.array([np.std(v) for v in values])
                axis.plot(RATIOS, mean, marker="o", markersize=3, label=criterion)
                axis.fill_between(RATIOS, mean - spread, mean + spread, alpha=0.15)
                cells = [f"{m:.3f} ± {s:.3f}" for m, s in zip(mean, spread, strict=True)]
                lines.append(f"| {criterion} ({'pruned' if column == 0 else 'fine-tuned'}) | "
                             + " | ".join(cells) + " |")  # fmt: skip
            axis.axhline(baseline, color="gray", linestyle="--", linewidth=1, label="dense")
            axis.set_yscale("log")
            axis.set_xlabel("pruning ratio r")
            axis.set_ylabel("test loss (cross-entropy)")
            title = "right after pruning" if column == 0 else "after 15 epochs of fine-tuning"
            axis.set_title(f"784-{hidden}-{hidden}-10, {title}", fontsize=9)
            axis.grid(alpha=0.3)
        row_axes[0].legend(fontsize=7)
        lines.append("")
    figure.tight_layout()
    figure.savefig(out / "fig1.png", dpi=100)
    (out / "fig1.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"saved {out / 'fig1.png'} and {out / 'fig1.md'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, choices=[32, 64])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="docs/fig1")
    parser.add_argument("--report", metavar="DIR", help="only draw the table and figure")
    args = parser.parse_args()
    if args.report:
        report(Path(args.report))
    elif args.hidden:
        run(args.hidden, args.seeds, Path(args.out))
    else:
        parser.error("give --hidden 32|64 to run, or --report DIR")


if __name__ == "__main__":
    main()
