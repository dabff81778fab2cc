"""TD-MPC episodes as tensors (the device path): equal to the Gymnasium-wrapped episodes, the
first-convolution table, and K candidates in lockstep, compared statistically."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks import make_task


@pytest.fixture(scope="module")
def tensor_tdmpc():
    return make_task("tdmpc-pendulum", episodes=8, test_episodes=60, episode_engine="torch")


def test_tensor_episodes_equal_the_gymnasium_wrapped_ones(tensor_tdmpc):
    from prunegym.tasks.tdmpc.episodes import network_controller

    model = tensor_tdmpc.load_model()
    tensor = tensor_tdmpc.episode_returns(model)
    wrapped = tensor_tdmpc.runner.run_wrapped(
        network_controller(lambda frames: model.pi(model.encode(frames)))
    )
    np.testing.assert_allclose(tensor, wrapped, rtol=1e-9, atol=1e-9)
    assert tensor_tdmpc.evaluate(model)["return"] == pytest.approx(tensor_tdmpc.dense_return)


def test_first_convolution_table_equals_the_convolution(tensor_tdmpc):
    from prunegym.tasks.tdmpc.tensor_episodes import FirstConvTable

    model = tensor_tdmpc.load_model()
    frames = tensor_tdmpc._frame_table()
    keys = torch.randint(0, frames.bins, (64, 3), generator=torch.Generator().manual_seed(0))
    table = FirstConvTable(frames, model.preprocess)
    first = model.encoder[0]
    direct = first(model.preprocess(frames.stacks(keys)))
    torch.testing.assert_close(table.forward(first)(keys), direct, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        first.weight[3] = 0.0  # a mask written in place: the table follows
    direct = first(model.preprocess(frames.stacks(keys)))
    torch.testing.assert_close(table.forward(first)(keys), direct, rtol=1e-5, atol=1e-5)


def test_table_episodes_agree_with_exact_ones_on_held_out_episodes(tensor_tdmpc):
    from prunegym.tasks.intervals import paired_difference, significant

    model = tensor_tdmpc.load_model()
    exact = tensor_tdmpc.test_episode_metrics(model)
    table = make_task("tdmpc-pendulum", episodes=8, test_episodes=60, episode_engine="torch+table")
    tabled = table.test_episode_metrics(model)
    assert len(exact) == len(tabled) == 60
    assert not significant(*paired_difference(tabled, exact))


def test_tdmpc_candidates_step_together_on_the_device_path(tensor_tdmpc):
    from prunegym.tasks.intervals import paired_difference, significant

    batched = PruneEnv(tensor_tdmpc, batching="batched", cache=False)
    sequential = PruneEnv(tensor_tdmpc, batching="sequential", cache=False)
    assert batched.batch_strategy == "batched" and batched.evaluator.strategy.candidates
    rows = np.random.default_rng(0).uniform(0.0, 0.4, (6, len(batched.groups)))
    rows[0] = 0.0
    found = batched.evaluate_batch(rows)
    assert found[0]["return"] == pytest.approx(batched.dense_metric, rel=1e-6)  # masks of ones
    a = [i["return"] for i in found]
    b = [i["return"] for i in sequential.evaluate_batch(rows)]
    assert not significant(*paired_difference(a, b))
    assert min(a) < batched.dense_metric - 20  # the candidates really are pruned


def test_stacked_candidates_on_tensor_episodes_equal_sequential_ones(tensor_tdmpc):
    stacked = PruneEnv(tensor_tdmpc, batching="stacked", cache=False)
    sequential = PruneEnv(tensor_tdmpc, batching="sequential", cache=False)
    rows = np.random.default_rng(1).uniform(0.0, 0.4, (3, len(stacked.groups)))
    a = [i["return"] for i in stacked.evaluate_batch(rows)]
    b = [i["return"] for i in sequential.evaluate_batch(rows)]
    np.testing.assert_allclose(a, b, rtol=1e-9)
