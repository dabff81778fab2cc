"""Candidates per second on the MNIST autoencoder: sequential steps against batched strategies.

    python benchmarks/batched_candidates.py [--candidates 16] [--repeats 5]

Measured in one run on the same K random coefficient vectors (20 % ± a little per group):

- sequential: ``env.step`` per candidate of ``PruneEnv(batching="sequential")`` (mask in
  place, forward of the masked model, PSNR);
- stacked bmm: the K masked parameter sets stacked, every Linear as one batched matmul over
  ``(K, N, features)``;
- vmap: ``torch.func.vmap`` of ``functional_call`` over the stacked parameters;
- sliced: each candidate's masked rows and columns removed by indexing (no Torch-Pruning), then
  a plain forward of the smaller dense layers;
- evaluate_batch: what ``PruneEnv`` ships (``batching="auto"``): sliced layers, the first
  layer computed once, candidates sorted so that equal prefixes are computed once.

Every strategy's PSNRs are checked against the sequential ones (max difference printed).
The masked parameter sets are prepared before the timers start for the batched strategies and
timed separately ("prepare").

Then, for ``evaluate_batch`` on these random candidates, on the first ``4K`` grid survivors
(n = 10, 20 % ± 1 %) and on all of them: the multiply-adds its matmuls make per candidate, as
a fraction of one dense forward's (the compute bound of its speed-up), and a
``torch.profiler`` table of where its time goes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch import nn

from prunegym.agents.grid import prefilter
from prunegym.agents.session import Problem
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks.mnist_autoencoder import psnr_db


def _timed(function, repeats: int) -> tuple[float, object]:
    function()
    samples, value = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        value = function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), value


def _layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.ReLU |
                                                                      nn.Sigmoid)]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    # outside no_grad: the dependency graph traces
    env = PruneEnv("mnist-ae", target=0.2, batching="sequential")
    shipped = PruneEnv(env.task, target=0.2, cache=False)
    with torch.no_grad():
        measure(env, shipped, args)


def measure(env: PruneEnv, shipped: PruneEnv, args: argparse.Namespace) -> None:
    images = env.task.eval_images
    rng = np.random.default_rng(0)
    candidates = [rng.uniform(0.1, 0.3, len(env.groups)) for _ in range(args.candidates)]

    def sequential():
        return [env.step(c)[4]["psnr"] for c in candidates]

    env.clear_cache()
    seconds_sequential, reference = _timed(lambda: (env.clear_cache(), sequential())[1],
                                           args.repeats)  # fmt: skip

    def prepare():
        stacks = []
        for c in candidates:
            env.pruner.apply(c)
            stacks.append({n: p.detach().clone() for n, p in env.pruner.model.named_parameters()})
        env.reset()
        return {n: torch.stack([s[n] for s in stacks]) for n in stacks[0]}

    seconds_prepare, params = _timed(prepare, 1)
    layers = _layers(env.model)

    def stacked_bmm():
        h = images.expand(len(candidates), *images.shape)
        for name, module in layers:
            if isinstance(module, nn.Linear):
                h = torch.baddbmm(params[f"{name}.bias"][:, None, :], h,
                                  params[f"{name}.weight"].transpose(1, 2))  # fmt: skip
            else:
                h = module(h)
        return [psnr_db(float(e)) for e in ((h - images) ** 2).mean((1, 2))]

    def vmapped():
        def one(p):
            return torch.func.functional_call(env.model, p, (images,))

        out = torch.func.vmap(one)(params)
        return [psnr_db(float(e)) for e in ((out - images) ** 2).mean((1, 2))]

    linears = [name for name, module in layers if isinstance(module, nn.Linear)]

    def sliced():
        """Drop every unit whose incoming weights are all zero; its constant output (the
        compensated bias through the activation) is folded into the next layer's bias."""
        results = []
        for k in range(len(candidates)):
            h, kept, constant = images, None, None  # kept units of the previous layer
            for name, module in layers:
                if not isinstance(module, nn.Linear):
                    h = module(h)
                    if constant is not None:
                        constant = module(constant)
                    continue
                weight, bias = params[f"{name}.weight"][k], params[f"{name}.bias"][k]
                if kept is not None:
                    bias = bias + weight[:, ~kept] @ constant
                    weight = weight[:, kept]
                last = name == linears[-1]
                kept = torch.ones(weight.shape[0], dtype=torch.bool) if last else (
                    weight.abs().sum(1) != 0)  # fmt: skip
                constant = bias[~kept]
                h = nn.functional.linear(h, weight[kept], bias[kept])
            results.append(psnr_db(float(((h - images) ** 2).mean())))
        return results

    print(f"{args.candidates} candidates, batch {tuple(images.shape)}, "
          f"{torch.get_num_threads()} torch threads")  # fmt: skip
    print(f"sequential env.step   {args.candidates / seconds_sequential:8.1f} candidates/s")
    print(f"prepare stacked sets  {seconds_prepare * 1e3:8.1f} ms for all candidates")

    def batch():
        return [info["psnr"] for info in shipped.evaluate_batch(np.array(candidates))]

    for label, function in (("stacked bmm", stacked_bmm), ("vmap", vmapped), ("sliced", sliced),
                            ("evaluate_batch", batch)):  # fmt: skip
        seconds, values = _timed(function, args.repeats)
        error = max(abs(a - b) for a, b in zip(values, reference, strict=True))
        ratio = seconds_sequential / seconds
        print(f"{label:<21} {args.candidates / seconds:8.1f} candidates/s  "
              f"({ratio:.2f}× sequential; max |Δpsnr| {error:.2e})")  # fmt: skip
    survivors, _ = prefilter(Problem(shipped), np.linspace(0.0, 0.95, 10), 0.01)
    for name, rows in (("random", np.array(candidates)),
                       (f"first {4 * args.candidates} grid", survivors[: 4 * args.candidates]),
                       (f"all {len(survivors)} grid", survivors)):  # fmt: skip
        fraction = multiply_add_fraction(shipped, rows)
        print(f"{name} candidates: multiply-adds per candidate / dense forward {fraction:.3f} "
              f"(compute bound {1 / fraction:.2f}× a dense forward)")  # fmt: skip
    with torch.profiler.profile() as profile:
        shipped.evaluate_batch(np.array(candidates))
    print(f"torch.profiler, evaluate_batch of the {len(candidates)} random candidates:")
    print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


def multiply_add_fraction(env: PruneEnv, rows: np.ndarray) -> float:
    """Multiply-adds of ``env.evaluate_batch(rows)``'s matmuls per candidate (the sliced
    chain's own count, the shared dense layers included once), over those of one dense
    forward."""
    chain = env.evaluator.strategy.chain
    chain._first_dense = chain._second_dense = None  # count the shared layers once per batch
    dense = sum(m.in_features * m.out_features for m in env.model.modules()
                if isinstance(m, nn.Linear)) * len(chain.inputs)  # fmt: skip
    before = chain.multiply_adds
    env.evaluate_batch(rows)
    return (chain.multiply_adds - before) / len(rows) / dense


if __name__ == "__main__":
    main()
