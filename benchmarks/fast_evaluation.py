"""Fast evaluation, measured in one run for each task: step cost over a forward pass,
candidates per second sequential against batched, grid search and FD momentum wall times.

    python benchmarks/fast_evaluation.py [--tasks mnist-ae tdmpc-pendulum] [--repeats 30]

Three ways to evaluate, all on the same environment settings (cache off unless stated):

- ``masked``: ``PruneEnv(batching="sequential")``: the masks are written into the model in
  place and the task evaluates the masked model (full-size layers), one candidate per step;
- ``step``: ``PruneEnv()`` (``batching="auto"``), one ``env.step`` per candidate; for a Linear
  chain this evaluates the physically sliced model;
- ``batch``: one ``env.unwrapped.evaluate_batch(C)`` call for all candidates (``auto``: the
  MNIST autoencoder as sliced chains sharing prefixes; TD-MPC ``stacked``, every candidate's
  episodes in lockstep with one stacked policy call per decision).

The solvers ask for many candidates at once (grid: up to 256 survivors, FD: the 2m + 1 probes);
on ``step`` environments they go through ``evaluate_batch``.

"forward" is one dense forward pass over the evaluation data: ``model(images)`` for the MNIST
autoencoder; for TD-MPC, where the evaluation data are closed-loop episodes, the dense
evaluation itself (100 decisions of 8 episodes, one batched network call each).
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import numpy as np
import torch

from prunegym.agents import make_agent
from prunegym.agents.grid import prefilter
from prunegym.agents.session import Problem
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks import make_task


def median_seconds(function, repeats: int) -> float:
    function()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def step_patterns(env: PruneEnv, rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    """Random: two random vectors in turn (every group changes); one channel: FD probes."""
    size = len(env.groups)
    pair = [rng.uniform(0.0, 0.6, size) for _ in range(2)]
    probes = []
    for group in range(size):
        probe = pair[0].copy()
        probe[group] = min(probe[group] + 1.0 / env.channels[group], 0.95)
        probes += [probe, pair[0]]
    return {"random": pair, "one channel": probes}


def cycle_steps(env: PruneEnv, actions: list[np.ndarray]):
    """A function that steps ``env`` with the next of ``actions`` on each call."""
    turn = iter(range(10**9))
    return lambda: env.step(actions[next(turn) % len(actions)])


def interleaved_medians(functions: dict[str, object], repeats: int) -> dict[str, float]:
    """Median seconds of each function, timed in turn within every repeat, so that slow
    phases of the machine hit all of them alike."""
    for function in functions.values():
        function()
    samples: dict[str, list[float]] = {label: [] for label in functions}
    for _ in range(repeats):
        for label, function in functions.items():
            started = time.perf_counter()
            function()
            samples[label].append(time.perf_counter() - started)
    return {label: statistics.median(values) for label, values in samples.items()}


def measure_steps(envs: dict[str, PruneEnv], forward, repeats: int, rng) -> None:
    """Dense forward and both step paths in both patterns, interleaved, in one loop."""
    functions = {"forward": forward}
    for name, actions in step_patterns(envs["step"], rng).items():
        for label, env in envs.items():
            env.reset()
            functions[f"{label} {name}"] = cycle_steps(env, actions)
    medians = interleaved_medians(functions, repeats)
    forward_seconds = medians.pop("forward")
    print(f"  dense forward            {forward_seconds * 1e3:9.2f} ms (median of {repeats}, "
          "interleaved with the steps)")  # fmt: skip
    for label, seconds in medians.items():
        print(f"  {label:<24} {seconds * 1e3:9.2f} ms   step/forward "
              f"{seconds / forward_seconds:.3f}")  # fmt: skip


def measure_candidates(
    envs: dict[str, PruneEnv], sets: dict[str, np.ndarray], key: str, repeats: int = 3
) -> dict:
    """Candidates per second of each way, per candidate set (median of ``repeats`` rounds,
    the ways timed in turn within each round); prints them with the agreement."""
    rates = {}
    for name, rows in sets.items():
        values: dict[str, list[float]] = {}

        def one_by_one(label: str, env: PruneEnv, rows=rows, values=values) -> None:
            env.reset()
            values[label] = [env.step(row)[4][key] for row in rows]

        def batched(env: PruneEnv = envs["step"], rows=rows, values=values) -> None:
            values["batch"] = [info[key] for info in env.evaluate_batch(rows)]

        functions = {label: partial(one_by_one, label, env) for label, env in envs.items()}
        functions["batch"] = batched
        medians = interleaved_medians(functions, repeats)
        rate = rates[f"{len(rows)} {name}"] = {
            label: len(rows) / seconds for label, seconds in medians.items()
        }
        strategy = envs["step"].batch_strategy
        print(f"  {len(rows)} {name} candidates ({strategy} batch, median of {repeats}):")
        reference = np.asarray(values["masked"])
        tolerance = 1e-5 * np.maximum(1.0, np.abs(reference))
        for label in rate:
            difference = np.abs(np.asarray(values[label]) - reference)
            close = int((difference <= tolerance).sum())
            masked, step = rate[label] / rate["masked"], rate[label] / rate["step"]
            print(
                f"    {label:<8} {rate[label]:8.2f} candidates/s  {masked:5.2f}x masked  "
                f"{step:5.2f}x step  max |Δ{key}| vs masked "
                f"{difference.max():.2e} ({close}/{len(rows)} within 1e-5)"
            )
    return rates


def run_solver(env: PruneEnv, name: str, **settings):
    env.reset(seed=0)
    return make_agent(name, progress=False, **settings).run(env)


def measure_solvers(envs: dict[str, PruneEnv], solvers: list[str]) -> dict:
    """Wall seconds of each solver on each environment; prints them with the results."""
    walls: dict[str, dict[str, float]] = {}
    for solver in solvers:
        for label, env in envs.items():
            result = run_solver(env, solver)
            walls.setdefault(solver, {})[label] = result.wall_seconds
            print(f"  {solver:<12} {label:<8} {result.wall_seconds:7.2f} s   "
                  f"{result.metric_name} {result.metric:.4f}   sparsity {result.sparsity:.4f}   "
                  f"feasible {result.feasible}   {result.evaluations} evaluations")  # fmt: skip
    return walls


def plot(figures: dict, path: str) -> None:
    """Candidates per second (left) and solver wall times (right), masked against batched."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (left, right) = pyplot.subplots(1, 2, figsize=(11, 4))
    colours = {"masked": "tab:gray", "step": "tab:blue", "batch": "tab:green"}
    groups = [(task, name, rate) for task, f in figures.items()
              for name, rate in f["candidates"].items()]  # fmt: skip
    for offset, label in enumerate(colours):
        heights = [rate[label] for _, _, rate in groups]
        left.bar(np.arange(len(groups)) + (offset - 1) * 0.27, heights, 0.27,
                 color=colours[label], label=label)  # fmt: skip
    for x, (_, _, rate) in enumerate(groups):
        left.annotate(f"{rate['batch'] / rate['masked']:.2f}× masked", (x + 0.27, rate["batch"]),
                      ha="center", va="bottom", fontsize=8)  # fmt: skip
    left.set_xticks(range(len(groups)), [f"{task}\n{name}" for task, name, _ in groups])
    left.set_ylabel("candidates per second")
    left.set_yscale("log")
    left.legend()
    runs = [(task, solver, walls) for task, f in figures.items()
            for solver, walls in f["solvers"].items()]  # fmt: skip
    for offset, label in enumerate(("masked", "step")):
        heights = [walls[label] for _, _, walls in runs]
        right.bar(np.arange(len(runs)) + (offset - 0.5) * 0.4, heights, 0.4,
                  color=colours["batch" if label == "step" else label],
                  label="batched (shipped)" if label == "step" else label)  # fmt: skip
    for x, (_, _, walls) in enumerate(runs):
        for offset, label in ((-0.2, "masked"), (0.2, "step")):
            right.annotate(f"{walls[label]:.1f} s", (x + offset, walls[label]), ha="center",
                           va="bottom", fontsize=8)  # fmt: skip
    right.set_xticks(range(len(runs)), [f"{task}\n{solver}" for task, solver, _ in runs])
    right.set_ylabel("solver wall time at 20 % (s)")
    right.legend()
    figure.suptitle(
        "prunegym evaluation: masked in place vs sliced / stacked batches (2 CPU cores)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["mnist-ae", "tdmpc-pendulum"])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--candidates", type=int, default=32)
    parser.add_argument("--plot", help="write a bar chart of the results to this PNG")
    args = parser.parse_args()
    figures = {}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for task_name in args.tasks:
        task = make_task(task_name)
        envs = {
            "masked": PruneEnv(task, target=0.2, cache=False, batching="sequential"),
            "step": PruneEnv(task, target=0.2, cache=False),
        }
        tdmpc = task_name == "tdmpc-pendulum"
        print(f"\n== {task_name}: {len(envs['step'].groups)} groups, step strategy "
              f"{envs['step'].batch_strategy}")  # fmt: skip
        model = envs["masked"].model
        if tdmpc:
            forward = partial(task.evaluate, model)
        else:
            forward = torch.no_grad()(partial(model, task.eval_images))
        rng = np.random.default_rng(0)
        repeats = max(3, args.repeats // 3) if tdmpc else args.repeats
        measure_steps(envs, forward, repeats, rng)
        size = len(envs["step"].groups)
        count = args.candidates // 2 if tdmpc else args.candidates
        sets = {"random": rng.uniform(0.1, 0.3, (count, size))}
        if not tdmpc:
            survivors, _ = prefilter(Problem(envs["step"]), np.linspace(0, 0.95, 10), 0.01)
            sets["grid survivors"] = survivors[: 4 * count]
        rates = measure_candidates(envs, sets, task.metric)
        for env in envs.values():  # solvers run with the evaluation cache on
            env.use_cache(True)
        solvers = ["fd-momentum"] if tdmpc else ["grid", "fd-momentum"]
        print("  solvers at 20 % ± 1 % (grid: n = 10), evaluation cache on:")
        if tdmpc:
            print(f"  grid           n/a: 10^{size} combinations at n = 10")
        figures[task_name] = {"candidates": rates, "solvers": measure_solvers(envs, solvers)}
    if args.plot:
        plot(figures, args.plot)


if __name__ == "__main__":
    main()
