"""One evaluation path: counts once, one cache, the dense model once, one validation per
batch, one reward (the solvers' objective is exactly its negative), masks written lazily."""

import numpy as np
import pytest
import torch

from prunegym import PruneEnv
from prunegym.agents import Session
from prunegym.agents.result import Budget
from prunegym.agents.session import Problem
from prunegym.tasks.toy import ToyTask


def _count_calls(monkeypatch, owner, name):
    calls = []
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


@pytest.mark.parametrize("batching", ["sliced", "sequential"])
def test_the_dense_model_is_evaluated_once(monkeypatch, batching):
    calls = _count_calls(monkeypatch, ToyTask, "evaluate")
    env = PruneEnv(ToyTask(), batching=batching)
    assert len(calls) == 1  # building the environment and its strategy: one dense evaluation
    env.evaluate_batch(np.full((3, len(env.groups)), 0.3))  # a strategy needs no other
    assert len(calls) == (1 if batching == "sliced" else 2)


def test_a_batch_counts_and_validates_once_and_evaluates_each_new_mask_once(monkeypatch):
    env = PruneEnv("toy")
    counts = _count_calls(monkeypatch, env.pruner, "counts")
    checks = _count_calls(monkeypatch, env.evaluator, "check")
    rows = np.random.default_rng(0).uniform(0, 0.6, (6, len(env.groups)))
    rows[3] = rows[1]  # a repeat within the batch
    evaluated = []
    strategy = env.evaluator.strategy
    monkeypatch.setattr(
        env.evaluator, "strategy", lambda c: evaluated.append(len(c)) or strategy(c)
    )
    infos = env.evaluate_batch(rows)
    assert len(counts) == 1 and len(checks) == 1 and evaluated == [5]
    assert [info["cache_hit"] for info in infos] == [False, False, False, True, False, False]
    assert env.evaluate_batch(rows)[0]["cache_hit"] and evaluated == [5]  # the one cache


def test_solver_objective_is_exactly_minus_the_reward():
    env = PruneEnv("toy", target=0.3, penalty=50.0)
    problem = Problem(env)
    rng = np.random.default_rng(1)
    dense, scale = env.dense_metric, env.task.metric_scale
    spread = dense + scale * rng.uniform(0, 40, 50)  # beyond 10 scales the term is clipped
    metrics = np.concatenate([spread, [np.nan, np.inf, 0.0, dense]])
    sparsities = rng.uniform(0, 0.9, len(metrics))
    for metric, sparsity in zip(metrics, sparsities, strict=True):
        assert problem.objective(metric, sparsity) == -env.reward(metric, sparsity)
        assert problem.objective(metric, sparsity, 0.0) == -env.reward(metric, sparsity, 0.0)
    assert env.reward(np.nan, 0.3) == -10.0  # a collapsed model costs a bounded amount
    assert env.reward(dense + 20 * scale, 0.3) == -10.0  # clipped (toy: lower mse is better)
    for row in rng.uniform(0, 0.8, (5, len(env.groups))):
        _, reward, _, _, info = env.step(row)
        assert problem.objective(info["metric"], info["sparsity"]) == -reward


def test_a_step_writes_no_mask_until_the_model_is_read():
    lazy = PruneEnv("toy")  # sliced: the step evaluates the sliced chain
    masked = PruneEnv("toy", batching="sequential")
    c = np.array([0.3, 0.5, 0.2, 0.4, 0.1])
    lazy.reset(seed=0)
    masked.reset(seed=0)
    _, _, _, _, info = lazy.step(c)
    masked.step(c)
    assert not lazy.pruner.applied_counts.any()  # nothing written by the step
    for (name, a), (_, b) in zip(
        lazy.model.state_dict().items(), masked.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name  # reading the model wrote exactly the step's masks
    assert lazy.pruner.applied_counts.tolist() == info["pruned_channels"]


def test_a_failed_step_leaves_the_environment_showing_the_previous_step():
    env = PruneEnv("toy", batching="sequential")
    env.reset(seed=0)
    env.step(np.full(5, 0.2))
    before = {k: v.clone() for k, v in env.model.state_dict().items()}
    original = env.task.evaluate
    env.task.evaluate = lambda model: (_ for _ in ()).throw(RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        env.step(np.full(5, 0.6))
    env.task.evaluate = original
    for name, value in env.model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert np.allclose(env._get_obs(), 0.2)


def test_session_repeats_cost_nothing_through_the_environments_cache():
    env = PruneEnv("toy")
    session = Session(env, Budget(evaluations=2), "test", progress=False)
    c = np.full(5, 0.2)
    first = session.evaluate(c)
    again = session.evaluate(c + 1e-4)  # the same channels
    assert session.evaluations == 1 and again.metric == first.metric
    session.evaluate(np.full(5, 0.4))
    session.evaluate(c)  # the budget is spent, but a cached mask is still answered
    many = session.evaluate_many(np.stack([c, np.full(5, 0.4)]))
    assert [e.metric for e in many] == [first.metric, session.history[1].metric]
    assert session.evaluations == 2 and session.hits == 4


def test_make_vec_offers_same_step_autoreset():
    import gymnasium as gym
    from gymnasium.vector import AutoresetMode

    envs = gym.make_vec(
        "prunegym/Toy-v0", num_envs=2, vectorization_mode="vector_entry_point",
        autoreset_mode=AutoresetMode.SAME_STEP, max_episode_steps=1,
    )  # fmt: skip
    envs.reset(seed=0)
    observations, _, _, truncations, infos = envs.step(np.full((2, 5), 0.2, np.float32))
    assert truncations.all() and not observations.any()  # reset in the same step
    assert np.allclose(np.stack(infos["final_obs"]), 0.2)
    assert infos["final_info"]["sparsity"].shape == (2,)


def test_a_bad_reset_option_changes_nothing():
    env = PruneEnv("toy", target=0.2)
    env.step(np.full(5, 0.2))
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(seed=3, options={"target": 0.5, "bogus": 1})
    assert env.target == 0.2 and env.cache_lookups == 1 and np.allclose(env._get_obs(), 0.2)
