"""Search episodes and held-out test episodes: intervals, paired differences, results."""

import numpy as np
import pytest
import torch
from noisy_toy import NoisyToy
from scipy import stats

from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks.intervals import describe_difference, mean_ci95, paired_difference, significant


def test_mean_ci95_is_the_student_t_interval():
    values = np.random.default_rng(0).normal(3.0, 2.0, 25)
    mean, half_width = mean_ci95(values)
    low, high = stats.t.interval(0.95, 24, loc=values.mean(), scale=stats.sem(values))
    assert mean == pytest.approx(values.mean())
    assert half_width == pytest.approx((high - low) / 2)
    assert mean_ci95([4.0]) == (4.0, float("inf"))
    with pytest.raises(ValueError, match="no values"):
        mean_ci95([])


def test_paired_differences_remove_the_shared_spread():
    rng = np.random.default_rng(1)
    start = rng.normal(0, 100, 50)  # how hard each episode is: shared by both models
    first, second = start + 5 + rng.normal(0, 1, 50), start + rng.normal(0, 1, 50)
    delta, half_width = paired_difference(first, second)
    assert delta == pytest.approx(5, abs=1) and half_width < 1
    assert mean_ci95(first)[1] > 20  # unpaired, the difference would be lost in the spread
    assert significant(delta, half_width) and not significant(0.5, 1.0)
    assert describe_difference(delta, half_width).startswith("+5.")
    assert describe_difference(0.5, 1.0) == "no significant difference (+0.5 ± 1.0)"
    with pytest.raises(ValueError, match="same episodes"):
        paired_difference([1, 2], [1, 2, 3])


def test_a_task_with_random_episodes_gets_its_result_scored_on_held_out_episodes():
    from prunegym.agents import Result, make_agent

    env = PruneEnv(NoisyToy(), target=0.3, tolerance=0.05, batching="sequential")
    result = make_agent("random", progress=False, seed=3, samples=12).run(env)
    test, dense = result.test_metrics, result.dense_test_metrics
    assert len(result.test_values) == len(result.dense_test_values) == 40
    assert test["episodes"] == 40 and test["mse"] == pytest.approx(np.mean(result.test_values))
    assert test["mse_ci95"] == pytest.approx(mean_ci95(result.test_values)[1])
    delta, half_width = paired_difference(result.test_values, result.dense_test_values)
    assert test["mse_vs_dense"] == pytest.approx(delta) and test["mse_vs_dense_ci95"] == half_width
    assert test["mse"] != result.metric  # other episodes than the search's
    assert dense["mse_vs_dense"] == 0 and dense["mse"] == pytest.approx(
        np.mean(env.task.test_episode_metrics(env.task.build_model()))
    )
    # The pruned model scores worse than the dense one on every episode: a clear difference.
    assert delta > half_width > 0
    assert Result.from_json(result.to_json()) == result


def test_test_evaluation_leaves_the_environment_as_it_was():
    env = PruneEnv(NoisyToy(), target=0.3, tolerance=0.05, batching="sequential")
    env.reset()
    env.step(np.full(len(env.groups), 0.2))
    before = {name: tensor.clone() for name, tensor in env.model.state_dict().items()}
    observation = env.unwrapped._get_obs()
    summary, values = env.test_evaluation(np.full(len(env.groups), 0.5))
    assert summary["mse"] == pytest.approx(values.mean()) and values.shape == (40,)
    after = env.model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert np.array_equal(env.unwrapped._get_obs(), observation)
    with pytest.raises(ValueError, match="action entries"):
        env.test_evaluation(np.full(len(env.groups), np.nan))


def test_deterministic_tasks_have_no_test_episodes(toy_env):
    from prunegym.agents import make_agent

    result = make_agent("uniform", progress=False).run(toy_env)
    assert result.test_metrics == {} and result.test_values == []
    with pytest.raises(ValueError, match="no test episodes"):
        toy_env.test_evaluation()


def test_the_bench_report_compares_results_by_paired_differences_on_test_episodes():
    from prunegym.agents import make_agent
    from prunegym.bench.report import _test_section

    env = PruneEnv(NoisyToy(), target=0.3, tolerance=0.05, batching="sequential")
    results = [make_agent(name, progress=False, seed=0).run(env) for name in ("uniform", "norm")]
    results.append(make_agent("uniform", progress=False, seed=0).run(env))  # a tie with itself
    results[2].solver = "uniform-again"
    lines = _test_section(results, higher_is_better=False)
    assert lines[1].startswith("### Held-out test episodes (40 per result)")
    rows = {line.split(" | ")[0][2:]: line for line in lines if line.startswith("| ")}
    best = min(results[:2], key=lambda r: r.test_metrics["mse"])  # lower mse is better
    assert rows[best.solver].endswith("| best |")
    other = results[1] if best is results[0] else results[0]
    delta, half_width = paired_difference(other.test_values, best.test_values)
    expected = describe_difference(delta, half_width, ".3g")
    assert rows[other.solver].endswith(f"| {expected} |")
    tie = rows["uniform-again"]  # scored exactly as uniform, episode by episode
    if best.solver == "uniform":
        assert tie.endswith("| no significant difference (+0 ± 0) |")
    else:
        assert tie.split(" | ")[-1] == rows["uniform"].split(" | ")[-1]
    deterministic = make_agent("uniform", progress=False).run(PruneEnv("toy"))
    assert _test_section([deterministic], higher_is_better=False) == []
