"""Leave-one-task-out: does a policy trained without task X serve X zero-shot?

    python examples/leave_one_out.py [--tasks mnist-ae,toy,...] (default: all six)
        [--targets 0.1,...,0.7] [--refine 50] [--seed 0] [--generations 150]
        [--test-episodes 1000] [--search-episodes K] [--out runs/leave-one-out]
        [--plot DIR] [--screen auto|true|false] [--proposals P]

For each held-out task X, a policy is trained with the shipped recipe on every other shipped
task (``prunegym train-policy --without X``; kept in ``--out`` and reused while the recipe it
records is the shipped one). On X it is asked zero-shot (no search) and compared with ``norm``
and ``uniform``, and with ``lamp``, the prior it corrects, alone; refined with ``--refine``
evaluations (the prior's, then its local search's; ``--refine`` + 1 in all, the answer's
included) it is
compared with random search given the same evaluations in all. Where every allocation in the
window can be listed (at most 5,000 channel-count combinations, a deterministic metric), the
best of them is shown too: no solver can beat it.
Deterministic metrics are compared directly. On TD-MPC every answer is scored on
``--test-episodes`` held-out test episodes (seeds 40,000 on), never on the search episodes,
and a difference counts only where its paired 95 % interval excludes zero. The task's default
of 100 gives intervals of about ±15 on a return near −170, too wide to resolve differences of
10; 1,000 narrow them about threefold. Beside refined − random, "searched" is the same
difference on the search episodes, the only ones either search sees; ``--search-episodes``
sets how many there are (the task's default, 8 on TD-MPC, where not given). ``--plot DIR``
saves one picture per held-out task, ``leave_one_out_<task>_seed<S>.png`` (``_screened``
added where the policy screened): each solver's score (its test mean and 95 % interval on TD-MPC)
against the sparsity it achieved.

"best of them − dense" is the better baseline against the dense model: where it is not
significantly below it (TD-MPC at 10 %), only an answer significantly better than the unpruned
network can beat the baselines. ``--screen`` is the policy's ``screen`` option (zero-shot and
refined): its answer, the prior and six blends of the prior toward ``uniform`` and ``norm``
are screened by their outputs on the task's calibration batches, and the least distorted is
the answer; no metric is evaluated for the choice. ``auto`` (the default, as the solver's)
screens on the five tasks whose metric is read from the outputs of a data batch, not on
TD-MPC's closed loop. ``--proposals P`` refines with
``proposals=P``: each candidate the local search evaluates is the least distorted of ``P``
proposals (pictures: ``_p<P>`` added).
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from prunegym.agents import make_agent
from prunegym.agents.learned_policy import save_policy
from prunegym.agents.policy_screen import screens
from prunegym.agents.policy_training import RECIPE, train_policy
from prunegym.envs.prune_env import PruneEnv
from prunegym.results.plots import save_metric_vs_sparsity
from prunegym.tasks import make_task, task_factory
from prunegym.tasks.checkpoints import safe_load
from prunegym.tasks.intervals import paired_difference


def _policy(held_out: str, out: Path, generations: int, seed: int) -> Path:
    path = out / f"without-{held_out}-seed{seed}-g{generations}.pt"
    tasks = {name: count for name, count in RECIPE["tasks"].items() if name != held_out}
    recipe = {**RECIPE, "tasks": tasks, "generations": generations, "seed": seed}
    if path.is_file():
        saved = safe_load(path, "policy file").get("recipe", {})
        if {key: saved.get(key) for key in recipe} == recipe:
            return path
        print(f"{path} was trained with another recipe: training it again")
    envs = {name: PruneEnv(name, granularity="channel", observation="features") for name in tasks}
    started = time.perf_counter()
    with tqdm(total=generations, desc=f"training without {held_out}", unit="gen") as bar:
        policy, _ = train_policy(
            envs, generations=generations, pairs=RECIPE["pairs"], sigma=RECIPE["sigma"],
            learning_rate=RECIPE["learning_rate"], targets_per_task=tasks,
            target_range=tuple(RECIPE["target_range"]), hidden=RECIPE["hidden"], seed=seed,
            progress=lambda generation, row: bar.update(1),
        )  # fmt: skip
    seconds = time.perf_counter() - started
    save_policy(policy, path, recipe)
    print(f"trained without {held_out} (seed {seed}) in {seconds:.0f} s")
    return path


def _held_out_env(name: str, test_episodes: int, search_episodes: int | None = None) -> PruneEnv:
    """``name``'s env at channel granularity, scored on ``test_episodes`` held-out episodes and
    searched on ``search_episodes`` (None: the task's default) where the task has them."""
    takes = inspect.signature(task_factory(name)).parameters
    asked = {"test_episodes": test_episodes, "episodes": search_episodes}
    options = {key: value for key, value in asked.items() if key in takes and value is not None}
    return PruneEnv(make_task(name, **options), granularity="channel")


def _better(a, b, sign: float) -> tuple[bool, str]:
    """Whether result ``a`` beats ``b``: on test episodes (paired interval excluding zero) where
    the task has them, otherwise by the metric; and the difference as text."""
    if a.test_values:
        mean, half = paired_difference(a.test_values, b.test_values)
        return sign * mean - half > 0, f"{sign * mean:+.1f} ± {half:.1f}"
    difference = sign * (a.metric - b.metric)
    return difference > 0, f"{difference:+.3g}"


def _versus_dense(result, sign: float) -> str:
    """``result`` against the dense model, as text: on the same test episodes (paired 95 %
    interval) where the task has them, otherwise by the metric (positive: the pruned model is
    better)."""
    if result.test_values:
        mean, half = paired_difference(result.test_values, result.dense_test_values)
        return f"{sign * mean:+.1f} ± {half:.1f}"
    return f"{sign * (result.metric - result.dense_metric):+.3g}"


def _exhaustive_best(env, limit: int = 5000) -> str:
    """The best metric over every allocation in ``env``'s window, if there are at most
    ``limit`` channel-count combinations and the metric is deterministic; else ``"–"``."""
    core = env.unwrapped
    if core.task.test_episodes:  # noisy: the best search score is biased upward
        return "–"
    upper = float(core.action_space.high.max())
    tops = core.pruned_counts(np.full((1, len(core.channels)), upper))[0]
    if np.prod([top + 1 for top in tops], dtype=float) > limit:
        return "–"
    counts = np.array(list(itertools.product(*[range(top + 1) for top in tops])))
    rows = np.minimum(counts / np.asarray(core.channels), upper)
    rows = rows[np.abs(core.sparsity_of(rows) - core.target) <= core.tolerance]
    sign = 1.0 if core.task.higher_is_better else -1.0
    metrics = [info["metric"] for info in core.evaluate_batch(rows)]
    return f"{sign * max(sign * m for m in metrics):.4g} ({len(rows)})" if len(rows) else "–"


def _point(result) -> tuple[float, float, float]:
    """``(sparsity, score, half-width)`` of a result: its test mean and 95 % interval where the
    task has test episodes, else its metric and 0."""
    if result.test_values:
        name = result.metric_name
        return result.sparsity, result.test_metrics[name], result.test_metrics[name + "_ci95"]
    return result.sparsity, result.metric, 0.0


def _score(result) -> str:
    star = "" if result.feasible else "*"
    _, value, half = _point(result)
    return f"{value:.1f} ± {half:.1f}{star}" if result.test_values else f"{value:.4g}{star}"


LABELS = {  # run name: legend label
    "policy": "policy, zero-shot", "lamp": "lamp (prior)", "norm": "norm",
    "uniform": "uniform", "refined": "policy refined ({samples} evaluations)",
    "random": "random search ({samples})",
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(RECIPE["tasks"]), help="held out in turn")
    parser.add_argument("--targets", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7")
    parser.add_argument("--refine", type=int, default=50)
    parser.add_argument("--generations", type=int, default=RECIPE["generations"])
    parser.add_argument("--seed", type=int, default=RECIPE["seed"], help="training seed")
    parser.add_argument("--test-episodes", type=int, default=1000, help="for noisy tasks")
    parser.add_argument("--search-episodes", type=int, help="for noisy tasks (default: task's)")
    parser.add_argument("--out", default="runs/leave-one-out")
    parser.add_argument("--plot", help="folder for one picture per held-out task")
    parser.add_argument("--screen", choices=("auto", "true", "false"), default="auto",
                        help="the policy's screen option")  # fmt: skip
    parser.add_argument("--proposals", type=int, default=1, help="the refined policy's")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.plot:  # a folder that cannot be made fails now, not after the first task
        try:
            Path(args.plot).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            parser.error(f"--plot {args.plot}: {error.strerror}")
    targets = [float(t) for t in args.targets.split(",")]
    held_outs = args.tasks.split(",")
    unknown = sorted(set(held_outs) - set(RECIPE["tasks"]))
    if unknown:
        parser.error(f"--tasks {','.join(unknown)}: not a recipe task {sorted(RECIPE['tasks'])}")
    if args.proposals < 1:
        parser.error(f"--proposals {args.proposals}: need at least 1")
    refined = {"refine": args.refine, "proposals": args.proposals}
    screen = {"auto": "auto", "true": True, "false": False}[args.screen]
    samples = args.refine + 1  # random search: the refined policy's evaluations in all
    started = time.perf_counter()
    for held_out in held_outs:
        path = str(_policy(held_out, out, args.generations, args.seed))
        policy = {"policy": path, "screen": screen}
        env = _held_out_env(held_out, args.test_episodes, args.search_episodes)
        screened = screens(screen, env.task)
        variant = ", screened" * screened + f", {args.proposals} proposals" * (args.proposals > 1)
        sign = 1.0 if env.task.higher_is_better else -1.0
        print(f"\n{held_out} ({env.task.metric}, dense {env.dense_metric:.4g}), policy "
              f"trained without it{variant}, {args.refine} refinement evaluations:\n")  # fmt: skip
        print("| target | policy | lamp (prior) | norm | uniform | best of them − dense | "
              "policy − best of them | "
              f"policy − lamp | policy refined | random ({samples}) | refined − random | "
              "best in window (allocations) |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        bar = tqdm(total=6 * len(targets), desc=held_out, unit="run", leave=False)
        points: dict[str, list] = {}
        for target in targets:
            runs = {}
            for name, solver, options in (
                ("policy", "learned-policy", policy),
                ("lamp", "lamp", {}),
                ("norm", "norm", {}),
                ("uniform", "uniform", {}),
                ("refined", "learned-policy", {**policy, **refined}),
                ("random", "random", {"samples": samples, "seed": 0}),
            ):
                env.reset(options={"target": target})
                runs[name] = make_agent(solver, progress=False, **options).run(env)
                bar.update(1)
            baselines = sorted(
                ("norm", "uniform"), key=lambda n: -sign * runs[n].metric
            )  # the better of the two by what was seen: its own (search) metric
            beats_one, versus_one = _better(runs["policy"], runs[baselines[0]], sign)
            beats_other, _ = _better(runs["policy"], runs[baselines[1]], sign)
            beats_random, versus_random = _better(runs["refined"], runs["random"], sign)
            if runs["random"].test_values:  # what both searches saw: the search episodes
                searched = sign * (runs["refined"].metric - runs["random"].metric)
                versus_random += f", searched {searched:+.1f}"
            _, versus_prior = _better(runs["policy"], runs["lamp"], sign)
            mark = "yes" if beats_one and beats_other else "no"
            cells = [
                f"{target:.0%}", _score(runs["policy"]), _score(runs["lamp"]),
                _score(runs["norm"]), _score(runs["uniform"]),
                _versus_dense(runs[baselines[0]], sign), f"{versus_one} ({mark})",
                versus_prior, _score(runs["refined"]), _score(runs["random"]),
                f"{versus_random} ({'yes' if beats_random else 'no'})", _exhaustive_best(env),
            ]  # fmt: skip
            tqdm.write("| " + " | ".join(cells) + " |")
            for name, label in LABELS.items():
                points.setdefault(label.format(samples=samples), []).append(_point(runs[name]))
        bar.close()
        if args.plot:
            suffix = "_screened" * screened + f"_p{args.proposals}" * (args.proposals > 1)
            test = runs["policy"].dense_test_metrics  # the dense model on the test episodes
            picture = save_metric_vs_sparsity(
                Path(args.plot) / f"leave_one_out_{held_out}_seed{args.seed}{suffix}.png", points,
                env.task.metric + (" (test mean, 95 % interval)" if test else ""),
                dense=test[env.task.metric] if test else env.dense_metric,
                title=f"{held_out}, held out: a policy trained without it (seed {args.seed})"
                + variant,
            )  # fmt: skip
            print(f"saved {picture}")
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
