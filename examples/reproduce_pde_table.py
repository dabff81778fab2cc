"""The elimination-compensation paper's diffusion–sorption case: test MSE against pruning ratio.

    python examples/reproduce_pde_table.py --architecture 1 --out docs/pde   # one architecture
    python examples/reproduce_pde_table.py --report docs/pde                 # the table

For each noise level (0, U(±0.005), U(±0.01)) and seed, the Table 2 network is trained for 30
epochs (Adam, batch 256) on samples 0–79 of the seeded data set. Each criterion scores the
weights on 8,192 random training rows (the nonlinear criterion on 256 of them), the lowest
``r·|W|`` over all layers are zeroed (with the criterion's bias shifts), and the test MSE
(samples 80–99, noisy targets) is recorded right after pruning and after 5 epochs of
fine-tuning with fixed masks. Rows go to ``OUT/pde_a<arch>.jsonl``; a re-run skips done rows.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from prunegym.pruning.weight.masks import pruned_copy, weight_scores
from prunegym.tasks.diffusion_sorption import (
    NOISE_LEVELS,
    calibration_rows,
    load_split,
    mse,
    regression_batches,
    train_regressor,
)
from prunegym.tasks.fitting import finetune

RATIOS = [0.3, 0.5, 0.7, 0.9]
CRITERIA = ["elimination-compensation", "magnitude", "gradient-magnitude", "random", "nonlinear"]
FINETUNE_EPOCHS = 5


def _done(path: Path) -> set[tuple]:
    if not path.exists():
        return set()
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["noise"], r["seed"], r["criterion"], r["ratio"]) for r in rows}


def _fine_tuning_batches(train_x, train_y, seed: int):
    """Batches for fine-tuning epoch ``e``: a shuffle unlike the 30 training epochs'."""
    return lambda epoch: regression_batches(train_x, train_y, 256, seed, 100 + epoch)


def run(architecture: int, seeds: int, out: Path) -> None:
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"pde_a{architecture}.jsonl"
    done = _done(path)
    with path.open("a") as sink:
        for noise in NOISE_LEVELS:
            train_x, train_y, test_x, test_y = load_split(noise)
            calibration = calibration_rows(train_x, train_y)  # random rows of all samples
            for seed in range(seeds):
                started = time.perf_counter()
                dense = train_regressor(architecture, noise, seed=seed)
                epochs = _fine_tuning_batches(train_x, train_y, seed)
                with torch.no_grad():
                    baseline = float(mse(dense, (test_x, test_y)))
                for criterion in CRITERIA:
                    scores, shifts = weight_scores(
                        dense, criterion, calibration, lambda m, b: m(b[0]), mse,
                        calibration[0][0][:256], seed,
                    )  # fmt: skip
                    for ratio in RATIOS:
                        if (noise, seed, criterion, ratio) in done:
                            continue
                        model, masks = pruned_copy(dense, scores, shifts, ratio)
                        with torch.no_grad():
                            pruned = float(mse(model, (test_x, test_y)))
                        finetune(model, masks, FINETUNE_EPOCHS, epochs, mse)
                        with torch.no_grad():
                            tuned = float(mse(model, (test_x, test_y)))
                        row = {"architecture": architecture, "noise": noise, "seed": seed,
                               "criterion": criterion, "ratio": ratio, "baseline": baseline,
                               "mse_pruned": pruned, "mse_finetuned": tuned}  # fmt: skip
                        sink.write(json.dumps(row) + "\n")
                        sink.flush()
                print(f"arch {architecture} noise {noise} seed {seed}: "
                      f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip


def report(out: Path) -> None:
    lines = []
    for path in sorted(out.glob("pde_a*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        architecture = rows[0]["architecture"]
        seeds = len({r["seed"] for r in rows})
        tuned = f"after {FINETUNE_EPOCHS} epochs of fine-tuning"
        for key, when in (("mse_pruned", "right after pruning"), ("mse_finetuned", tuned)):
            lines += [f"### Architecture {architecture}, test MSE ×10⁴ {when} "
                      f"(mean ± std over {seeds} seeds)", "",
                      "| noise | criterion | dense | " + " | ".join(f"r={r}" for r in RATIOS)
                      + " |", "|---|---|---|" + "---|" * len(RATIOS)]  # fmt: skip
            for noise in NOISE_LEVELS:
                mine = [r for r in rows if r["noise"] == noise]
                dense = 1e4 * np.mean([r["baseline"] for r in mine])
                for criterion in CRITERIA:
                    cells = []
                    for ratio in RATIOS:
                        values = 1e4 * np.array([r[key] for r in mine if r["criterion"] ==
                                                 criterion and r["ratio"] == ratio])  # fmt: skip
                        cells.append(f"{values.mean():.2f} ± {values.std():.2f}" if len(values)
                                     else "")  # fmt: skip
                    lines.append(f"| {noise:g} | {criterion} | {dense:.2f} | "
                                 + " | ".join(cells) + " |")  # fmt: skip
            lines.append("")
    (out / "pde.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", type=int, choices=[1, 2])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="docs/pde")
    parser.add_argument("--report", metavar="DIR", help="only print and save the table")
    args = parser.parse_args()
    if args.report:
        report(Path(args.report))
    elif args.architecture:
        run(args.architecture, args.seeds, Path(args.out))
    else:
        parser.error("give --architecture 1|2 to run, or --report DIR")


if __name__ == "__main__":
    main()
