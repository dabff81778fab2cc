"""The solver interface and every solver on the toy task."""

import itertools
import math
import warnings

import gymnasium as gym
import gymnasium.utils.env_checker
import numpy as np
import pytest

import prunegym  # noqa: F401  (registers the ids)
from prunegym.agents import (
    AskTellAgent,
    Budget,
    FDMomentum,
    GridSearch,
    Problem,
    Result,
    make_agent,
)
from prunegym.agents.grid import prefilter
from prunegym.envs.prune_env import PruneEnv

CHEAP_SOLVERS = {
    "grid": ({"points": 5}, None),
    "fd-momentum": ({}, None),
    "uniform": ({}, None),
    "norm": ({}, None),
    "lamp": ({}, None),
    "random": ({}, 20),
    "torch-pruning": ({}, None),
    "optuna-tpe": ({}, 20),
    "optuna-cmaes": ({}, 20),
}


@pytest.mark.parametrize("name", sorted(CHEAP_SOLVERS))
def test_every_solver_returns_a_feasible_result_on_the_toy_task(name):
    env = PruneEnv("toy", target=0.3, tolerance=0.02)
    options, budget = CHEAP_SOLVERS[name]
    result = make_agent(name, progress=False, **options).run(env, budget)
    assert result.feasible, result.message
    assert abs(result.sparsity - 0.3) <= 0.02
    assert result.evaluations == len(result.history) >= 1
    if budget is not None:
        assert result.evaluations <= budget
    assert len(result.coefficients) == 5
    assert all(0.0 <= c <= 0.95 for c in result.coefficients)
    assert result.metrics["mse"] == result.metric and result.dense_metric == 0.0
    assert result.wall_seconds > 0 and result.task == "toy" and result.target == 0.3
    if name != "torch-pruning":  # re-applying the coefficients reproduces the metric
        env.reset()
        _, _, _, _, info = env.step(np.asarray(result.coefficients))
        assert info["metric"] == pytest.approx(result.metric, rel=1e-6, abs=1e-12)
        assert info["sparsity"] == result.sparsity


def test_result_is_the_best_feasible_evaluation_of_its_history():
    env = PruneEnv("toy", target=0.3, tolerance=0.02)
    result = make_agent("random", progress=False).run(env, 25)
    feasible = [h for h in result.history if abs(h["sparsity"] - 0.3) <= 0.02]
    assert feasible and result.metric == min(h["metric"] for h in feasible)  # mse: lower wins


def test_result_json_round_trips(tmp_path):
    env = PruneEnv("toy")
    result = FDMomentum(progress=False).run(env)
    again = Result.from_json(result.to_json())
    assert again == result
    result.save(tmp_path / "r.json")
    assert Result.load(tmp_path / "r.json") == result
    record = result.to_dict()
    for key in (
        "solver", "task", "target", "tolerance", "coefficients", "metric", "metrics",
        "dense_metric", "sparsity", "feasible", "evaluations", "wall_seconds", "history",
    ):  # fmt: skip
        assert key in record
    assert set(record["history"][0]) == {
        "coefficients", "reward", "metric", "sparsity", "feasible", "seconds"
    }  # fmt: skip
    seconds = [entry["seconds"] for entry in record["history"]]
    assert seconds == sorted(seconds) and seconds[-1] <= record["wall_seconds"]
    with pytest.raises(ValueError, match="unknown keys"):
        Result.from_dict({**record, "surprise": 1})


@pytest.mark.parametrize(
    "budget",
    [0, -3, 1.5, True, {"evaluations": 0}, {"seconds": -1.0}, {"seconds": math.nan},
     {"minutes": 3}, "ten"],
)  # fmt: skip
def test_bad_budgets_raise_clear_errors(budget):
    env = PruneEnv("toy")
    with pytest.raises(ValueError, match="budget"):
        make_agent("random", progress=False).run(env, budget)
    with pytest.raises(ValueError, match="positive"):
        Budget(evaluations=-1)


def test_a_never_ending_solver_needs_a_budget_and_a_seconds_budget_stops_it():
    env = PruneEnv("toy")
    with pytest.raises(ValueError, match="does not stop by itself"):
        make_agent("random", progress=False).run(env)
    result = make_agent("random", progress=False).run(env, Budget(seconds=0.3))
    assert 1 <= result.evaluations and result.wall_seconds < 2.0
    for name in ("uniform", "random"):  # the clock never stops the first evaluation
        result = make_agent(name, progress=False).run(env, Budget(seconds=1e-9))
        assert result.evaluations == 1 and np.isfinite(result.metric)


@pytest.mark.parametrize(
    "name", ["fd-momentum", "grid", "uniform", "norm", "lamp", "torch-pruning"]
)
def test_an_unreachable_target_is_reported_infeasible(name):
    env = PruneEnv("toy", target=0.99)
    assert env.max_sparsity < 0.98
    options = {"points": 4} if name == "grid" else {}
    result = make_agent(name, progress=False, **options).run(env)
    assert result.feasible is False
    assert "infeasible" in result.message
    assert result.evaluations >= 1


def test_an_unmeetable_metric_floor_is_reported_infeasible():
    env = PruneEnv("toy", target=0.3)
    result = FDMomentum(metric_floor=-1.0, progress=False).run(env)  # mse can never be < 0
    assert result.feasible is False and "metric floor" in result.message


def test_grid_prefilter_counts_match_brute_force():
    env = PruneEnv("toy", target=0.25)
    problem = Problem(env)
    points = np.linspace(0.0, 0.95, 4)
    for rule, measure in (("exact", env.sparsity_of), ("estimate", env.sparsity_estimate_of)):
        survivors, total = prefilter(problem, points, 0.03, rule)
        brute = [
            combination
            for combination in itertools.product(points, repeat=5)
            if abs(float(measure(np.array(combination))) - 0.25) <= 0.03
        ]
        assert total == 4**5 and len(survivors) == len(brute) > 0
        assert {tuple(row) for row in survivors} == set(brute)


def test_grid_rejects_impossibly_large_grids_and_bad_points():
    env = PruneEnv("toy")
    with pytest.raises(ValueError, match="too large"):
        GridSearch(points=100, progress=False).run(env)
    with pytest.raises(ValueError, match="points"):
        GridSearch(points=1)


def test_fd_momentum_improves_its_objective_and_rises_monotonically_until_the_window():
    env = PruneEnv("toy", target=0.3)
    agent = FDMomentum(progress=False)
    result = agent.run(env)
    problem = Problem(env)
    start = problem.objective(env.dense_metric, 0.0)  # c = 0: the dense model
    assert problem.objective(result.metric, result.sparsity) < start
    trace = result.details["trace"]
    assert trace[0]["phase"] == "ascent" and trace[-1]["phase"] == "refine"
    ascent = np.array([t["coefficients"] for t in trace if t["phase"] == "ascent"])
    assert np.all(np.diff(ascent, axis=0) >= -1e-12)  # never lowered during the ascent
    assert ascent[0].sum() == 0.0  # starts from c = 0


def test_fd_momentum_monotone_constraint_can_be_switched_off():
    env = PruneEnv("toy", target=0.3)
    result = FDMomentum(monotone=False, refine=False, progress=False).run(env)
    assert result.feasible and result.details["trace"][-1]["phase"] == "ascent"


def test_fd_momentum_warm_start_refines_from_the_best_torch_pruning_allocation():
    from prunegym.agents.torch_pruning import TorchPruningBaseline

    env = PruneEnv("toy", target=0.3, tolerance=0.02)
    lamp = TorchPruningBaseline(importance="lamp", progress=False)
    allocation = lamp.allocation(env)
    np.testing.assert_allclose(allocation, lamp.run(env).coefficients)  # no evaluation needed
    pruned = []
    lamp.prune = lambda *args: pruned.append(args)  # remembered per task: no pruning again
    np.testing.assert_array_equal(lamp.allocation(PruneEnv(env.task, target=0.3)), allocation)
    assert not pruned
    result = make_agent("fd-momentum", warm_start="torch-pruning", progress=False).run(env)
    assert result.solver_settings["warm_start"] == "torch-pruning"
    starts = result.details["warm_starts"]
    assert "bn-scale" in result.details["warm_start_skipped"]  # the toy has no BatchNorm
    assert 1 <= starts <= 5
    seeds = result.history[:starts]
    assert any(np.allclose(entry["coefficients"], allocation) for entry in seeds)
    sign = Problem(env).sign  # the toy's metric is an error: lower is better
    best_seed = max(seeds, key=lambda entry: sign * entry["metric"])
    trace = result.details["trace"]
    assert trace[0]["phase"] == "refine"  # no ascent: the refinement starts at the best seed
    np.testing.assert_allclose(trace[0]["coefficients"], best_seed["coefficients"])
    assert result.feasible
    with pytest.raises(ValueError, match="fd-momentum warm_start must be"):
        FDMomentum(warm_start="obd")


def test_cached_evaluations_are_free_and_identical():
    env = PruneEnv("toy")

    class Repeat(AskTellAgent):
        name = "repeat"

        def start(self, problem):
            self.left = 3

        def ask(self):
            self.left -= 1
            return None if self.left < 0 else np.full((2, 5), 0.2)  # same channels each time

        def tell(self, candidates, evaluations):
            first, second = evaluations
            assert (first.metric, first.reward, first.sparsity) == (
                second.metric,
                second.reward,
                second.sparsity,
            )
            assert np.array_equal(first.counts, second.counts)

    result = Repeat(progress=False).run(env)
    assert result.evaluations == 1
    assert result.cache_hits == 5 and result.cache_lookups == 6  # one cache: the env's


def test_ask_must_return_the_right_shape():
    class Broken(AskTellAgent):
        name = "broken"

        def ask(self):
            return np.zeros(3)

    with pytest.raises(ValueError, match=r"\(k, 5\)"):
        Broken(progress=False).run(PruneEnv("toy"))


def test_solvers_work_through_gym_make_wrappers():
    env = gym.make("prunegym/Toy-v0", target=0.3, tolerance=0.02)
    result = make_agent("fd-momentum", progress=False).run(env)
    assert result.feasible and result.task == "toy"


def test_torch_pruning_baseline_prunes_physically_and_leaves_the_env_alone():
    env = PruneEnv("toy", target=0.3, tolerance=0.02)
    before = {k: v.clone() for k, v in env.model.state_dict().items()}
    agent = make_agent("torch-pruning", progress=False)
    result = agent.run(env)
    kept = sum(p.numel() for p in agent.pruned_model.parameters())
    assert result.details["parameters_kept"] == kept
    assert result.sparsity == pytest.approx(1 - kept / result.details["parameters_dense"])
    assert all(np.array_equal(before[k], v) for k, v in env.model.state_dict().items())
    assert len(result.coefficients) == 5 and sum(result.coefficients) > 0


def test_optuna_penalty_mode_and_bad_sampler():
    env = PruneEnv("toy", target=0.3, tolerance=0.05)
    result = make_agent("optuna-tpe", constraint="penalty", progress=False).run(env, 30)
    assert result.evaluations == 30
    with pytest.raises(ValueError, match="sampler"):
        make_agent("optuna-tpe", sampler="grid")


def test_sb3_agent_trains_a_few_hundred_steps_on_the_toy_task():
    env = PruneEnv("toy", target=0.2, tolerance=0.02)
    result = make_agent("td3", progress=False).run(env, 300)
    assert result.solver == "td3" and result.evaluations == 300
    assert result.feasible, result.message


def test_sb3_episode_mode_puts_the_target_in_the_observation():
    from prunegym.agents import SB3Agent, TargetInObservation

    env = PruneEnv("toy", target=0.2)
    wrapped = TargetInObservation(env, 0.1, 0.5)
    observation, _ = wrapped.reset(seed=3)
    assert observation.shape == (6,) and 0.1 <= observation[-1] <= 0.5
    assert env.target == pytest.approx(observation[-1])
    observation, _ = wrapped.reset(options={"target": 0.33})
    assert observation[-1] == np.float32(0.33) and env.target == 0.33
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "wrapped env" and "use [-1, 1] actions" advice
        gym.utils.env_checker.check_env(wrapped, skip_render_check=True)

    env.reset(options={"target": 0.2})
    agent = SB3Agent("PPO", target_range=(0.1, 0.5), progress=False)
    result = agent.run(env, 200)
    assert result.evaluations == 201  # 200 training steps, then the policy's answer at 0.2
    assert result.target == 0.2 and env.target == 0.2
    answers = [agent.predict(t) for t in (0.1, 0.5)]
    assert all(a.shape == (5,) and a.min() >= 0 and a.max() <= 0.95 for a in answers)
    assert not np.array_equal(answers[0], answers[1])  # the target reaches the policy


@pytest.mark.parametrize("importance", ["magnitude", "lamp", "taylor", "hessian", "fpgm"])
def test_torch_pruning_takes_each_of_its_criteria_globally_or_per_layer(importance, mnist_env):
    # The autoencoder: the toy's loss is 0 at the dense model, so its gradients are too.
    mnist_env.reset(options={"target": 0.3})
    try:
        results = [
            make_agent("torch-pruning", importance=importance, global_pruning=scope,
                       bisections=10, progress=False).run(mnist_env)
            for scope in (True, False)
        ]  # fmt: skip
    finally:
        mnist_env.reset(options={"target": 0.2})  # the shared environment's default
    for result in results:  # physically pruned near the target (10 bisections of the ratio)
        assert result.details["importance"] == importance
        assert abs(result.sparsity - 0.3) < 0.03 and result.metric < result.dense_metric
    assert [r.details["global_pruning"] for r in results] == [True, False]


def test_torch_pruning_refuses_unknown_or_inapplicable_criteria():
    with pytest.raises(ValueError, match="unknown importance 'obd'"):
        make_agent("torch-pruning", importance="obd")
    env = PruneEnv("toy", target=0.3, tolerance=0.03)
    with pytest.raises(ValueError, match="bn-scale"):
        make_agent("torch-pruning", importance="bn-scale", progress=False).run(env)


def test_a_run_ranks_feasible_evaluations_by_metric_alone_a_perfect_one_first():
    from prunegym.agents.result import Evaluation
    from prunegym.agents.session import Problem

    problem = Problem(PruneEnv("toy", target=0.4))  # mse: lower is better

    def evaluation(metric, sparsity, reward, feasible=True):
        counts = np.zeros(problem.size, dtype=np.int64)
        return Evaluation(np.zeros(problem.size), reward, metric, {}, sparsity, feasible, counts)

    near, far = evaluation(2e-6, 0.400, -0.1), evaluation(1e-6, 0.408, -0.5)
    assert problem.rank(far) > problem.rank(near)  # in the window the reward's penalty is moot
    assert problem.rank(evaluation(0.0, 0.4, 1.0)) > problem.rank(far)
    assert problem.rank(evaluation(math.nan, 0.4, 0.0)) < problem.rank(far)
    outside = evaluation(0.0, 0.3, 9.0, feasible=False)
    assert problem.rank(outside) < problem.rank(far)  # outside the window: below, by reward
    psnr = Problem(PruneEnv("mnist-ae", target=0.4))  # higher is better: +inf is perfect
    perfect = evaluation(math.inf, 0.4, 1.0)
    assert psnr.rank(perfect) > psnr.rank(evaluation(30.0, 0.4, 1.0))
