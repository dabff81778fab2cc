"""Per-group features (``observation="features"``) and AMC-style sequential episodes."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import prunegym  # noqa: F401  (registers the ids)
from prunegym.envs.features import CONTEXT_FEATURES, DYNAMIC_FEATURES, STATIC_FEATURES
from prunegym.envs.prune_env import PruneEnv
from prunegym.envs.sequential import SequentialPruneEnv
from prunegym.envs.vector import PruneVectorEnv

WIDTH = len(STATIC_FEATURES) + len(DYNAMIC_FEATURES)


def _check(env) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # bounded spaces: not even the checker's warnings
        check_env(env, skip_render_check=True)


@pytest.mark.parametrize("task", ["toy", "mnist-convnet"])
def test_features_observation_passes_check_env_and_describes_each_group(task):
    env = PruneEnv(task, observation="features", target=0.3)
    _check(env)
    observation, _ = env.reset(seed=0)
    groups = len(env.groups)
    assert observation["groups"].shape == (groups, WIDTH)  # any number of groups, same width
    assert observation["context"].shape == (len(CONTEXT_FEATURES),)
    column = {name: index for index, name in enumerate(STATIC_FEATURES)}
    rows = env.group_features
    total = env.pruner.total_parameters
    for index, group in enumerate(env.groups):
        share = rows[index, column["parameter_share"]]
        assert share == pytest.approx(group.parameters / total, rel=1e-5)
        assert rows[index, column["coupling"]] == float(group.kind == "coupling")
        assert 0 < rows[index, column["mac_share"]] <= 1
        masses = rows[index, [column[f"score_mass_{q}"] for q in (25, 50, 75)]]
        assert np.all(np.diff(masses) >= 0) and np.all((masses >= 0) & (masses <= 1))
    assert 0 <= rows[:, column["depth"]].min() < rows[:, column["depth"]].max() <= 1
    coefficients = np.linspace(0.1, 0.5, groups).astype(np.float32)
    observation, *_, info = env.step(coefficients)
    np.testing.assert_array_equal(observation["groups"][:, len(STATIC_FEATURES)], coefficients)
    context = dict(zip(CONTEXT_FEATURES, observation["context"], strict=True))
    assert context["sparsity"] == pytest.approx(info["sparsity"], abs=1e-6)
    assert context["budget_left"] == pytest.approx(0.3 - info["sparsity"], abs=1e-6)


def test_features_context_describes_the_masks_a_float64_action_applied():
    env = PruneEnv("toy", observation="features", target=0.3)
    env.reset(seed=0)
    action = np.full(len(env.groups), 2.5 / 24)  # c·n on a rounding boundary in float64
    assert not np.array_equal(env.pruned_counts(action), env.pruned_counts(action.astype("f4")))
    observation, *_, info = env.step(action)
    context = dict(zip(CONTEXT_FEATURES, observation["context"], strict=True))
    assert context["sparsity"] == pytest.approx(info["sparsity"], abs=1e-6)


def test_groups_without_score_information_read_as_uniform_scores():
    from prunegym.envs.features import _score_columns

    with pytest.warns(UserWarning, match="no gradient"):  # taylor: the toy loss is flat at dense
        env = PruneEnv("toy", criterion="taylor", observation="features")
    first = STATIC_FEATURES.index("score_spread")
    uniform = _score_columns(torch.ones(8))  # spread 0, min/mean 1, masses 0.25, 0.5, 0.75
    np.testing.assert_allclose(env.group_features[:, first : first + 5], [uniform] * 5)


def test_features_observation_refuses_what_it_cannot_describe():
    with pytest.raises(ValueError, match="observation must be one of"):
        PruneEnv("toy", observation="pixels")
    with pytest.raises(ValueError, match="channel groups"):
        PruneEnv("toy", granularity="weight", observation="features")


@pytest.mark.parametrize("name", ["prunegym/PruneFeatures-v0", "prunegym/PruneSequential-v0"])
def test_registered_feature_ids_pass_check_env(name):
    env = gym.make(name, task="toy", target=0.3)
    _check(env.unwrapped)


@pytest.mark.parametrize("task", ["toy", "mnist-ae"])
def test_sequential_hard_budget_lands_every_random_episode_in_the_window(task):
    env = SequentialPruneEnv(task, tolerance=0.01)
    rng = np.random.default_rng(0)
    for target in (0.1, 0.3, 0.5, 0.7):
        for _ in range(3):
            observation, _ = env.reset(options={"target": target})
            rewards, done, steps = [], False, 0
            while not done:
                current = np.flatnonzero(observation["groups"][:, -1])
                assert current.tolist() == [env.order[steps]]  # the group whose turn it is
                action = rng.uniform(0, 0.95, 1).astype(np.float32)
                observation, reward, done, truncated, info = env.step(action)
                rewards.append(reward)
                steps += 1
            assert steps == len(env.groups) and not truncated
            assert all(r == 0.0 for r in rewards[:-1])  # the reward comes at the end
            assert info["feasible"], (target, info["sparsity"])
            assert abs(info["sparsity"] - target) <= 0.01
            assert observation["groups"][:, len(STATIC_FEATURES) + 1].all()  # all decided


def test_sequential_episode_matches_the_one_shot_step_and_checks_its_actions():
    env = SequentialPruneEnv("toy", hard_budget=False, target=0.3)
    env.reset(seed=0)
    for bad in (np.array([1.5], np.float32), np.array([np.nan], np.float32)):
        with pytest.raises(ValueError, match="not a coefficient in"):
            env.step(bad)
    for bad in (0.3, [[0.3]], ["0.3"], [0.3 + 1j], [True]):  # as strict as PruneEnv.step
        with pytest.raises(ValueError, match="one real coefficient of shape"):
            env.step(bad)
    actions = [0.1, 0.2, 0.3, 0.4, 0.5]
    for action in actions:
        _, reward, done, _, info = env.step(np.array([action], np.float32))
    assert done
    coefficients = np.zeros(len(env.groups), np.float32)
    coefficients[env.order] = actions  # unprojected: exactly the actions, in visiting order
    one_shot = PruneEnv("toy", target=0.3)
    _, expected, *_ = one_shot.step(coefficients)
    assert reward == pytest.approx(expected, rel=1e-6)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.array([0.1], np.float32))


def test_sequential_hard_budget_keeps_a_landing_completion_in_a_narrow_window():
    env = SequentialPruneEnv("toy", target=0.25, tolerance=0.005)
    env.reset(seed=0)
    for action in (0.43, 0.13, 0.38, 0.19, 0.25):  # ended at 0.2552 with the extremes rule
        *_, info = env.step(np.array([action], np.float32))
    assert info["feasible"] and abs(info["sparsity"] - 0.25) <= 0.005
    rng = np.random.default_rng(1)
    for task in ("toy", "mnist-ae"):
        env = SequentialPruneEnv(task, tolerance=0.005)
        for target in rng.uniform(0.05, 0.8, 12):
            env.reset(options={"target": float(target)})
            done = False
            while not done:
                action = rng.uniform(0, 0.95, 1).astype(np.float32)
                *_, done, _, info = env.step(action)
            assert info["feasible"], (task, target, info["sparsity"])


def test_feature_ids_refuse_settings_they_cannot_honour():
    with pytest.raises(ValueError, match="observes features; for coefficients use"):
        gym.make("prunegym/PruneFeatures-v0", task="toy", observation="coefficients")
    with pytest.raises(ValueError, match="hard_budget must be True or False"):
        gym.make("prunegym/PruneSequential-v0", task="toy", hard_budget="false")
    with pytest.raises(ValueError, match="PruneVectorEnv observes coefficients"):
        gym.make_vec("prunegym/Prune-v0", num_envs=2, vectorization_mode="vector_entry_point",
                     task="toy", observation="features")  # fmt: skip
    with pytest.raises(ValueError, match="PruneVectorEnv observes coefficients"):
        PruneVectorEnv(PruneEnv("toy", observation="features"), 2)


def test_sequential_final_step_counts_channels_as_the_projection_did():
    from torch import nn

    from prunegym.tasks.toy import ToyTask

    class ThirtyWide(ToyTask):  # a 30-channel group: 0.95·30 is 28.5 in float64, 28.49… in float32
        def build_model(self):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                model = nn.Sequential()
                model.encoder = nn.Sequential(nn.Linear(16, 30), nn.ReLU(), nn.Linear(30, 8))
                model.decoder = nn.Sequential(nn.Linear(8, 24), nn.ReLU(), nn.Linear(24, 16))
            return model.eval()

    task = ThirtyWide()
    top = PruneEnv(task).sparsity_of(np.full(3, 0.95))  # every group at 0.95, counted in float64
    env = SequentialPruneEnv(task, target=float(top) - 1e-4, tolerance=2e-4)
    env.reset(seed=0)
    done = False
    while not done:
        *_, done, _, info = env.step(np.array([0.95], np.float32))
    assert info["feasible"] and info["sparsity"] == pytest.approx(top)
