"""Batched evaluation: evaluate_batch against sequential steps, the strategies, the lockstep
pendulums, the solvers' batched session, and the vector environment."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import prunegym  # noqa: F401  (registers the ids)
from prunegym.envs.evaluation.sliced_chain import UnsupportedChain
from prunegym.envs.prune_env import PruneEnv


def _candidates(env, count, seed=0, high=0.6):
    rows = np.random.default_rng(seed).uniform(0.0, high, (count, len(env.groups)))
    rows[1] = 0.0  # the dense model
    rows[-1] = rows[2]  # a repeat inside the batch
    return rows


def _sequential(env, rows, key):
    env.clear_cache()
    values = [env.step(row)[4][key] for row in rows]
    env.clear_cache()
    return np.array(values)


def test_toy_batch_equals_sequential_steps_and_leaves_the_env_as_it_was():
    env = PruneEnv("toy", cache=False)
    rows = _candidates(env, 12)
    reference = _sequential(env, rows, "mse")
    env.reset()
    env.step(np.full(5, 0.3))
    before = {n: p.detach().clone() for n, p in env.model.named_parameters()}
    observation = env._get_obs()
    infos = env.evaluate_batch(rows)
    assert env.batch_strategy == "sliced"
    batched = np.array([info["mse"] for info in infos])
    np.testing.assert_allclose(batched, reference, rtol=1e-5, atol=1e-9)
    assert batched[1] == pytest.approx(0.0, abs=1e-10)
    assert [info["sparsity"] for info in infos] == pytest.approx(env.sparsity_of(rows).tolist())
    for name, parameter in env.model.named_parameters():
        assert torch.equal(parameter, before[name]), name
    assert np.array_equal(env._get_obs(), observation)


def test_mnist_batch_equals_sequential_steps_to_float_tolerance(mnist_env):
    rows = _candidates(mnist_env, 6, high=0.4)
    reference = _sequential(mnist_env, rows, "psnr")
    mnist_env.reset()
    infos = mnist_env.evaluate_batch(rows)
    mnist_env.clear_cache()
    assert mnist_env.batch_strategy == "sliced"
    psnr = np.array([info["psnr"] for info in infos])
    np.testing.assert_allclose(psnr, reference, atol=1e-4)
    assert psnr[1] == pytest.approx(mnist_env.dense_metric, abs=1e-4)
    rewards = [mnist_env.reward(p, info["sparsity"]) for p, info in zip(psnr, infos, strict=True)]
    assert [info["reward"] for info in infos] == pytest.approx(rewards)


def test_batch_uses_and_fills_the_cache():
    env = PruneEnv("toy")
    rows = _candidates(env, 6)
    first = env.evaluate_batch(rows)
    assert [info["cache_hit"] for info in first] == [False] * 5 + [True]  # the repeat
    again = env.evaluate_batch(rows)
    assert all(info["cache_hit"] for info in again)
    assert [i["mse"] for i in again] == [i["mse"] for i in first]
    _, _, _, _, info = env.step(rows[3])
    assert info["cache_hit"] and info["mse"] == first[3]["mse"]


@pytest.mark.parametrize("batching", ["sequential", "sliced", "batched"])
def test_every_strategy_gives_the_same_metrics(batching):
    auto = PruneEnv("toy", cache=False)
    forced = PruneEnv("toy", cache=False, batching=batching)
    rows = _candidates(auto, 8, seed=3)
    a = [info["mse"] for info in auto.evaluate_batch(rows)]
    b = [info["mse"] for info in forced.evaluate_batch(rows)]
    assert forced.batch_strategy == batching
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9)


def test_weight_granularity_batches_sequentially_and_sliced_is_refused():
    env = PruneEnv("toy", granularity="weight", cache=False)
    rows = _candidates(env, 5)
    reference = _sequential(env, rows, "mse")
    assert env.batch_strategy == "sequential"
    np.testing.assert_array_equal([i["mse"] for i in env.evaluate_batch(rows)], reference)
    with pytest.raises(ValueError, match="channel granularity"):
        PruneEnv("toy", granularity="weight", batching="sliced").evaluate_batch(rows)
    with pytest.raises(ValueError, match="batching must be one of"):
        PruneEnv("toy", batching="fast")


def test_unsupported_chain_is_a_clear_error():
    from prunegym.envs.evaluation.sliced_chain import SlicedChain

    env = PruneEnv("toy")
    with pytest.raises(UnsupportedChain, match="LayerNorm"):
        SlicedChain(env.model, env.pruner.masker, [env.model.encoder[0], torch.nn.LayerNorm(32)],
                    env.task.inputs)  # fmt: skip


def test_a_chain_that_does_not_reproduce_evaluate_is_refused():
    from prunegym.envs import check_task
    from prunegym.tasks.toy import ToyTask

    class WrongChain(ToyTask):
        def evaluation_chain(self, model):  # drops the last layer
            return self.inputs, [*model.encoder, *model.decoder[:-1]]

        def metrics_of_outputs(self, outputs):
            return {"mse": float(outputs.pow(2).mean()) + 1.0, "relative_error": 0.0}

    with pytest.raises(RuntimeError, match=r"evaluation_chain\(\) gives mse=.* dense model"):
        PruneEnv(WrongChain())  # refused when built
    with pytest.raises(RuntimeError, match=r"evaluation_chain\(\) gives mse=.* candidate 0"):
        check_task(WrongChain())


@pytest.mark.parametrize(
    ("name", "paths"),
    [
        ("toy", ["sliced", "batched"]),
        ("mnist-ae", ["sliced", "batched"]),
        ("mnist-convnet", ["batched"]),
        ("mnist-classifier", ["batched"]),
        ("diffusion-sorption", ["batched"]),
    ],
)
def test_shipped_tasks_pass_check_task(name, paths):
    from prunegym.envs import check_task

    report = check_task(name)  # raises on a nondeterministic evaluate, a wrong path, a bad reset
    assert report["batched_paths"] == paths
    assert report["largest_relative_difference"] < 1e-4


def test_check_task_evaluates_at_the_environment_s_precision():
    from prunegym.envs import check_task

    report = check_task("toy", precision="bf16")  # fp32 evaluations here read as nondeterministic
    assert report["batched_paths"] == ["batched"]  # the sliced chain is float32 only
    assert 1e-5 < report["largest_relative_difference"] < 1e-2  # bf16 rounding, not fp32's
    with pytest.raises(ValueError, match=r"check_task sets \['batching', 'cache'\] itself"):
        check_task("toy", batching="batched", cache=True)


def test_check_task_catches_a_nondeterministic_evaluate():
    from prunegym.envs import check_task
    from prunegym.tasks.toy import ToyTask

    class Noisy(ToyTask):
        def evaluate(self, model):
            metrics = super().evaluate(model)
            return {**metrics, "mse": metrics["mse"] + float(torch.rand(()))}

    with pytest.raises(RuntimeError, match="not deterministic"):
        check_task(Noisy())


def test_bad_batches_name_the_problem_and_change_nothing():
    env = PruneEnv("toy")
    env.step(np.full(5, 0.2))
    before = {n: p.detach().clone() for n, p in env.model.named_parameters()}
    rows = np.full((3, 5), 0.1)
    rows[2, 4] = np.nan
    with pytest.raises(ValueError, match=r"candidate 2: .*action\[4\]=nan"):
        env.evaluate_batch(rows)
    with pytest.raises(ValueError, match=r"shape \(K, 5\)"):
        env.evaluate_batch(np.zeros(5))
    with pytest.raises(ValueError, match="candidate 0: .*0.96"):
        env.evaluate_batch([[0.96, 0, 0, 0, 0]])
    for name, parameter in env.model.named_parameters():
        assert torch.equal(parameter, before[name])
    assert env.evaluate_batch(np.zeros((0, 5))) == []


def test_solvers_use_the_batch_and_keep_their_budget():
    from prunegym.agents import make_agent

    results = {}
    for batching in ("auto", "sequential"):
        env = PruneEnv("toy", target=0.3, tolerance=0.02, batching=batching)
        grid = make_agent("grid", points=5, progress=False).run(env)
        fd = make_agent("fd-momentum", progress=False).run(env)
        results[batching] = (grid, fd)
    for auto, sequential in zip(*results.values(), strict=True):
        assert auto.evaluations == sequential.evaluations
        assert auto.metric == pytest.approx(sequential.metric, rel=1e-4, abs=1e-9)
        counts = [env.pruned_counts(np.array(r.coefficients)) for r in (auto, sequential)]
        np.testing.assert_array_equal(*counts)  # the same masks
    env = PruneEnv("toy", target=0.3, tolerance=0.02)
    limited = make_agent("grid", points=5, progress=False).run(env, 7)
    assert limited.evaluations == 7 and len(limited.history) == 7


def test_lockstep_pendulums_equal_the_wrapped_environments():
    from prunegym.tasks.tdmpc.controllers import energy_lqr_controller, random_controller
    from prunegym.tasks.tdmpc.episodes import EpisodeRunner

    runner = EpisodeRunner([5, 6, 7])
    for make in (energy_lqr_controller, lambda: random_controller(2)):
        np.testing.assert_array_equal(runner.run(make()), runner.run_wrapped(make()))
    copies = runner.run(energy_lqr_controller(), copies=2)
    assert copies.shape == (2, 3) and np.array_equal(copies[0], copies[1])


def test_stacked_policy_is_bit_identical_to_plain_calls():
    from prunegym.tasks.tdmpc.stacked_policy import StackedPolicy
    from prunegym.tasks.tdmpc_pendulum import load_world_model

    models = [load_world_model() for _ in range(3)]
    generator = torch.Generator().manual_seed(0)
    for model in models[1:]:  # zero random entries, as masks do
        for parameter in model.parameters():
            parameter.data.mul_((torch.rand(parameter.shape, generator=generator) > 0.2).float())
    stacked = {
        name: torch.stack([dict(m.named_parameters())[name].detach() for m in models])
        for name, _ in models[0].named_parameters()
    }
    frames = torch.randint(0, 256, (3 * 4, 3, 28, 28), dtype=torch.uint8, generator=generator)
    with torch.no_grad():
        batched = StackedPolicy(models[0], stacked)(frames)
        plain = torch.cat([m.pi(m.encode(f)) for m, f in zip(models, frames.chunk(3), strict=True)])
    assert torch.equal(batched, plain)


def test_tdmpc_batch_equals_sequential_steps_exactly(monkeypatch):
    from prunegym.envs.evaluation.strategies import StackedStrategy
    from prunegym.tasks.tdmpc_pendulum import TDMPCPendulumTask

    monkeypatch.setattr(StackedStrategy, "chunk", 3)  # 4 candidates: two stacked chunks
    env = PruneEnv(TDMPCPendulumTask(episodes=2, calibration_episodes=1), cache=False)
    rows = _candidates(env, 4, high=0.5)
    reference = _sequential(env, rows, "return")
    infos = env.evaluate_batch(rows)
    assert env.batch_strategy == "stacked"
    assert [info["return"] for info in infos] == reference.tolist()
    assert infos[1]["return"] == env.dense_metric


def test_vector_env_matches_gymnasium_sync_vector_env():
    kwargs = {"num_envs": 3, "max_episode_steps": 2}
    ours = gym.make_vec("prunegym/Toy-v0", vectorization_mode="vector_entry_point", **kwargs)
    sync = gym.make_vec("prunegym/Toy-v0", vectorization_mode="sync", **kwargs)
    assert type(ours).__name__ == "PruneVectorEnv"
    assert ours.action_space == sync.action_space
    assert ours.observation_space == sync.observation_space
    assert ours.metadata["autoreset_mode"] == sync.metadata["autoreset_mode"]
    a, a_info = ours.reset(seed=0)
    b, b_info = sync.reset(seed=0)
    assert np.array_equal(a, b) and a in ours.observation_space and set(a_info) == set(b_info)
    rng = np.random.default_rng(1)
    for _ in range(5):  # crosses two truncations and their next-step resets
        actions = rng.uniform(0, 0.95, (3, 5)).astype(np.float32)
        ours_step, sync_step = ours.step(actions), sync.step(actions)
        assert np.array_equal(ours_step[0], sync_step[0]) and ours_step[0] in ours.observation_space
        np.testing.assert_allclose(ours_step[1], sync_step[1], rtol=1e-6, atol=1e-8)
        for flags in (2, 3):
            assert np.array_equal(ours_step[flags], sync_step[flags])
        assert set(ours_step[4]) == set(sync_step[4])
        np.testing.assert_allclose(ours_step[4]["mse"], sync_step[4]["mse"], rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match=r"shape \(3, 5\)"):
        ours.step(np.zeros((2, 5)))
    ours.close()
    sync.close()


def test_vector_env_passes_the_checks_gymnasium_applies_to_single_envs():
    """Gymnasium 1.x has no vector env checker; these are check_env's checks that apply:
    observations in their space, reset and step determinism, returned data not reused."""
    from gymnasium.utils.env_checker import data_equivalence
    from gymnasium.utils.passive_env_checker import check_obs

    def make():
        return gym.make_vec("prunegym/Toy-v0", num_envs=4, vectorization_mode="vector_entry_point")

    first, second = make(), make()
    actions = np.random.default_rng(0).uniform(0, 0.95, (3, 4, 5)).astype(np.float32)
    runs = []
    for envs in (first, second):
        obs, info = envs.reset(seed=7)
        check_obs(obs, envs.observation_space, "reset")
        trace = [(obs, info)]
        for action in actions:
            step = envs.step(action)
            check_obs(step[0], envs.observation_space, "step")
            assert step[0] is not trace[-1][0]  # a fresh array each time
            trace.append(step)
        runs.append(trace)
    assert data_equivalence(runs[0], runs[1])
    again = first.reset(seed=7)
    assert data_equivalence(again, runs[0][0])
    _, info = first.reset(seed=7, options={"target": 0.4})
    assert np.all(info["target"] == 0.4)


def test_sb3_agents_train_on_batched_copies_within_the_budget():
    from prunegym.agents import make_agent

    env = PruneEnv("toy", target=0.3, tolerance=0.05)
    result = make_agent("ppo", n_envs=4, progress=False).run(env, 30)
    assert result.evaluations == 30 and result.solver_settings["n_envs"] == 4
    check = PruneEnv("toy", target=0.3, tolerance=0.05)
    for record in result.history[::7]:  # every recorded row is what its coefficients score
        info = check.step(np.asarray(record["coefficients"]))[4]
        assert record["metric"] == pytest.approx(info["mse"], rel=1e-5, abs=1e-9)
        assert record["sparsity"] == info["sparsity"]
    with pytest.raises(ValueError, match="fixed-target mode"):
        make_agent("ppo", n_envs=2, target_range=(0.1, 0.5))
    with pytest.raises(ValueError, match="n_envs must be an integer >= 1"):
        make_agent("sac", n_envs=0)
