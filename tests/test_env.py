import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import prunegym
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks.toy import ToyTask

INFO_KEYS = {
    "metric",
    "dense_metric",
    "sparsity",
    "sparsity_estimate",
    "target",
    "feasible",
    "params_kept",
}


@pytest.mark.parametrize("env_id", ["prunegym/Toy-v0", "prunegym/MNISTAutoencoder-v0"])
def test_registered_ids_pass_both_env_checkers(env_id):
    env = gym.make(env_id, target=0.2, tolerance=0.01, criterion="compensated", compensation="mean")
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=False)
    assert env.spec.max_episode_steps == 50


def test_spaces_and_info(mnist_env):
    env = mnist_env
    assert env.action_space == gym.spaces.Box(0, 0.95, (5,), np.float32)
    assert env.observation_space == env.action_space
    obs, info = env.reset(seed=0)
    assert np.array_equal(obs, np.zeros(5, np.float32))
    assert info["sparsity"] == 0 and info["metric"] == info["dense_metric"]
    obs, reward, terminated, truncated, info = env.step(np.full(5, 0.2, np.float32))
    assert INFO_KEYS | {"psnr", "mse"} <= set(info)
    assert info["metric"] == info["psnr"] == pytest.approx(10 * math.log10(1 / info["mse"]))
    assert np.allclose(obs, 0.2)
    assert not terminated and not truncated
    assert reward == pytest.approx(
        (info["psnr"] - info["dense_metric"]) / 10.0 - 100.0 * (info["sparsity"] - 0.2) ** 2
    )


def test_reward_falls_as_coefficients_rise(mnist_env):
    env = mnist_env
    env.reset(options={"target": 0.0})
    psnrs = [env.step(np.full(5, level, np.float32))[4]["psnr"] for level in (0.0, 0.3, 0.6, 0.9)]
    assert psnrs[0] == pytest.approx(env.dense_metric)
    assert psnrs == sorted(psnrs, reverse=True)
    env.reset(options={"target": 0.2})
    assert env.target == 0.2


def test_feasible_flag_follows_the_window(toy_env):
    env = toy_env
    env.reset(options={"target": 0.5})
    _, _, _, _, info = env.step(np.zeros(5))
    assert info["feasible"] is False
    env.reset(options={"target": 0.0})
    _, _, _, _, info = env.step(np.zeros(5))
    assert info["feasible"] is True


def test_compensated_mean_beats_l2_without_compensation_at_20_percent(mnist_task):
    action = np.full(5, 0.2, np.float32)
    results = {}
    for criterion, compensation in [("compensated", "mean"), ("l2", "none")]:
        env = PruneEnv(mnist_task, criterion=criterion, compensation=compensation)
        env.reset(seed=0)
        results[criterion] = env.step(action)[4]["psnr"]
    assert results["compensated"] > results["l2"] + 1.0


def _state(env):
    return {k: v.clone() for k, v in env.model.state_dict().items()}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=5, max_size=5).filter(
            lambda v: any(not (math.isfinite(x) and 0 <= x <= 0.95) for x in v)
        ),
        st.lists(st.floats(0, 0.95), min_size=0, max_size=9).filter(lambda v: len(v) != 5),
    )
)
def test_bad_actions_raise_and_leave_the_model_alone(toy_env, action):
    env = toy_env
    env.step(np.full(5, 0.3))
    before = _state(env)
    with pytest.raises(ValueError) as error:
        env.step(np.array(action))
    message = str(error.value)
    if len(action) == 5:
        bad = [i for i, x in enumerate(action) if not (math.isfinite(x) and 0 <= x <= 0.95)]
        assert all(f"action[{i}]" in message for i in bad)
    else:
        assert "shape" in message
    assert all(torch.equal(before[k], v) for k, v in env.model.state_dict().items())
    assert np.allclose(env._get_obs(), 0.3)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="compensated"):
        PruneEnv("toy", criterion="magic")
    with pytest.raises(ValueError, match="mean, optimal"):
        PruneEnv("toy", compensation="magic")
    with pytest.raises(ValueError, match="mnist-classifier, mnist-convnet, tdmpc-pendulum, toy"):
        PruneEnv("cifar")
    with pytest.raises(ValueError, match="granularity must be one of"):
        PruneEnv("toy", granularity="block")
    with pytest.raises(ValueError, match="unknown weight criterion 'compensated'"):
        PruneEnv("toy", granularity="weight", criterion="compensated")
    with pytest.raises(ValueError, match="target"):
        PruneEnv("toy", target=1.5)
    with pytest.raises(ValueError, match="unknown reset options"):
        PruneEnv("toy").reset(options={"sparsity": 0.2})


class SharedModelTask(ToyTask):
    """A user task that hands out the same model object every time."""

    def __init__(self):
        self.model = None
        super().__init__()
        self.model = super().build_model()

    def build_model(self):
        return self.model if self.model is not None else super().build_model()


def test_the_users_model_is_never_modified():
    task = SharedModelTask()
    original = copy.deepcopy(task.model.state_dict())
    env = PruneEnv(task, compensation="mean")
    env.step(np.full(5, 0.5))
    assert all(torch.equal(original[k], v) for k, v in task.model.state_dict().items())
    assert env.model is not task.model


def test_package_exports():
    assert prunegym.PruneEnv is PruneEnv
    assert issubclass(ToyTask, prunegym.Task)


def test_cache_hits_return_exactly_what_a_fresh_evaluation_returns():
    cached, fresh = PruneEnv("toy", target=0.3), PruneEnv("toy", target=0.3, cache=False)
    first, second = np.full(5, 0.3), np.array([0.1, 0.5, 0.2, 0.4, 0.0])
    infos = [cached.step(c)[4] for c in (first, second, first, first + 1e-4)]
    assert [i["cache_hit"] for i in infos] == [False, False, True, True]  # same counts
    assert infos[-1]["cache_hit_rate"] == 0.5
    again = fresh.step(first)[4]
    for key, value in again.items():
        if not key.startswith("cache"):
            assert infos[2][key] == value, key
    masked = {k: v.clone() for k, v in cached.model.state_dict().items()}
    fresh.step(first + 1e-4)
    assert all(torch.equal(v, fresh.model.state_dict()[k]) for k, v in masked.items())
    assert [fresh.step(c)[4]["cache_hit"] for c in (first, first)] == [False, False]
    cached.clear_cache()
    assert cached.step(first)[4]["cache_hit"] is False and cached.cache_hits == 0


@pytest.mark.parametrize("kind", [complex, str, bool])
def test_actions_that_are_not_real_numbers_are_refused_before_any_change(toy_env, kind):
    before = _state(toy_env)
    with pytest.raises(ValueError, match="must be real numbers"):
        toy_env.step(np.array([kind(0.1)] * 5))
    after = _state(toy_env)
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copy_is_the_same_environment_sharing_no_model(how):
    import pickle

    from prunegym.envs.sequential import SequentialPruneEnv

    def twin_of(env):
        return copy.deepcopy(env) if how == "deepcopy" else pickle.loads(pickle.dumps(env))

    wrapped = gym.make("prunegym/Toy-v0", target=0.4, observation="features")
    env = wrapped.unwrapped
    wrapped.reset(seed=3)
    env.action_space.seed(5)
    _, _, _, _, info = wrapped.step(np.full(5, 0.3))
    dense = PruneEnv("toy").model.state_dict()
    twin = twin_of(wrapped).unwrapped
    assert twin.target == 0.4 and np.array_equal(twin._coefficients, env._coefficients)
    assert twin.np_random_seed == env.np_random_seed == 3
    assert twin.np_random.random() == copy.deepcopy(env.np_random).random()
    assert np.array_equal(twin.action_space.sample(), copy.deepcopy(env.action_space).sample())
    assert twin.spec == env.spec and twin.spec.id == "prunegym/Toy-v0"
    assert twin.model is not env.model and twin.task is not env.task
    for ours, theirs in zip(twin.model.parameters(), env.model.parameters(), strict=True):
        assert torch.equal(ours, theirs)
    observation, _, _, _, again = twin.step(np.full(5, 0.3))
    assert again["cache_hit"] and again["metric"] == info["metric"]  # the cache came along
    assert set(observation) == {"groups", "context"}
    twin.reset()  # dense again, bit for bit, and the original keeps its masks and its cache
    for name, value in twin.model.state_dict().items():
        assert torch.equal(value, dense[name]), name
    masked = env.model.state_dict()
    assert any(not torch.equal(masked[name], value) for name, value in dense.items())
    twin.clear_cache()
    assert env.cached(np.full(5, 0.3)) and env.cache_lookups == 1
    uncached = PruneEnv("toy", cache=False)
    assert not twin_of(uncached).step(np.full(5, 0.2))[4]["cache_hit"]
    sequential = SequentialPruneEnv("toy", target=0.3)
    sequential.reset(seed=0)
    sequential.step(np.array([0.2], np.float32))
    copied = twin_of(sequential)
    assert copied.core is not sequential.core and copied._position == sequential._position == 1
    assert np.array_equal(copied._coefficients, sequential._coefficients)


def test_a_subclass_copies_with_its_own_arguments_and_attributes():
    class Counting(PruneEnv):
        def __init__(self, task, extra, **kwargs):
            super().__init__(task, **kwargs)
            self.extra, self.steps = extra, 0

        def step(self, action):
            self.steps += 1
            return super().step(action)

    env = Counting("toy", extra=5, target=0.3)
    env.step(np.full(5, 0.2))
    twin = copy.deepcopy(env)
    assert type(twin) is Counting and (twin.extra, twin.steps, twin.target) == (5, 1, 0.3)
    twin.step(np.full(5, 0.2))
    assert (twin.steps, env.steps) == (2, 1)


def test_a_copy_refuses_a_task_that_loads_other_weights(monkeypatch):
    env = PruneEnv("toy")
    original = ToyTask.load_model

    def other_weights(task):
        model = original(task)
        with torch.no_grad():
            next(model.parameters()).add_(1.0)
        return model

    monkeypatch.setattr(ToyTask, "load_model", other_weights)
    with pytest.raises(ValueError, match="the copy's task loaded other weights"):
        copy.deepcopy(env)
