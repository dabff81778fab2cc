"""SB3 on the features observation: a set extractor whose weights fit any number of groups."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from residual_task import ResidualTask
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from prunegym.agents import (
    GroupSetExtractor,
    SB3Agent,
    TargetInObservation,
    TaskMixture,
    sb3_sequential_env,
    transfer_policy,
)
from prunegym.agents.sb3 import UnitActions
from prunegym.envs.prune_env import PruneEnv
from prunegym.envs.sequential import SequentialPruneEnv


def _batch(observation: dict) -> dict:
    return {key: torch.from_numpy(value)[None] for key, value in observation.items()}


def test_extractor_fits_any_number_of_groups_and_ignores_their_order():
    toy, residual = SequentialPruneEnv("toy"), SequentialPruneEnv(ResidualTask())
    assert len(toy.groups) != len(residual.groups)
    extractor = GroupSetExtractor(toy.observation_space, hidden=8)
    assert extractor.features_dim == 3 * 8 + 6
    first, _ = toy.reset(options={"target": 0.3})
    other, _ = residual.reset(options={"target": 0.3})
    with torch.no_grad():
        features = extractor(_batch(first))
        assert extractor(_batch(other)).shape == features.shape == (1, 30)
        order = np.random.default_rng(0).permutation(len(toy.groups))
        shuffled = {"groups": first["groups"][order], "context": first["context"]}
        assert torch.allclose(extractor(_batch(shuffled)), features, atol=1e-6)
        # the current group's embedding is its own: marking another group changes it
        current = np.flatnonzero(first["groups"][:, -1])[0]
        moved = first["groups"].copy()
        moved[:, -1] = 0.0
        moved[(current + 1) % len(moved), -1] = 1.0
        changed = extractor(_batch({"groups": moved, "context": first["context"]}))
        assert not torch.allclose(changed[:, :8], features[:, :8])
        assert torch.equal(changed[:, -6:], features[:, -6:])  # the context is passed through


def test_extractor_refuses_other_observations_in_one_line():
    good = SequentialPruneEnv("toy").observation_space
    groups, context = good["groups"], good["context"]
    flat = spaces.Box(0.0, 1.0, (15,), np.float32)
    for wrong in (
        PruneEnv("toy").observation_space,  # coefficients
        spaces.Dict({"groups": flat, "context": context}),  # no group axis
        spaces.Dict({"groups": spaces.Box(0.0, 1.0, (2, 4, 15)), "context": context}),
        spaces.Dict({"groups": groups, "context": spaces.Box(-1.0, 1.0, (2, 6))}),
        spaces.Dict({"groups": spaces.MultiDiscrete(np.full((4, 15), 2)), "context": context}),
        spaces.Tuple((groups, context)),
    ):
        with pytest.raises(ValueError, match="reads the features observation") as error:
            GroupSetExtractor(wrong)
        assert "\n" not in str(error.value)
    assert GroupSetExtractor(good, hidden=np.int64(4)).features_dim == 3 * 4 + 6
    for hidden in (0, 2.5, True):
        with pytest.raises(ValueError, match="hidden must be an integer"):
            GroupSetExtractor(good, hidden=hidden)


def test_drawn_target_draws_each_episode_and_takes_a_fixed_one():
    env = sb3_sequential_env("toy", (0.2, 0.5))
    assert env.target is None  # before the first episode
    targets = []
    for seed in (1, None, None):
        observation, _ = env.reset(seed=seed)
        targets.append(env.target)
        assert observation["context"][0] == np.float32(env.target)  # target: context column 0
        assert env.unwrapped.core.target == env.target
    assert len(set(targets)) == 3 and all(0.2 <= t <= 0.5 for t in targets)
    env.reset(seed=1)
    assert env.target == targets[0]  # reseeding repeats the draws
    env.reset(options={"target": 0.33})
    assert env.target == 0.33 == env.unwrapped.core.target
    for refused in (1.5, None, "x"):  # the environment's one-line error; nothing changes
        with pytest.raises(ValueError, match="target"):
            env.reset(options={"target": refused})
        assert env.target == 0.33 == env.unwrapped.core.target
    with pytest.raises(ValueError, match="target"):  # nor the draws, seeded or not
        env.reset(seed=7, options={"target": 1.5})
    state = env.rng.bit_generator.state
    with pytest.raises(ValueError, match="target"):
        env.reset(options={"target": 1.5})
    assert env.rng.bit_generator.state == state
    env.reset(seed=1)
    assert env.target == targets[0]
    env.reset(options={"target": 0.3})
    for action in ([1.5], [np.nan]):  # in the units the caller used, and nothing changes
        with pytest.raises(ValueError, match=r"is not in \[-1, 1\] \(rescaled actions\)"):
            env.step(np.array(action, np.float32))
    for bad in (0.5, [True], "0.5", None, np.zeros(12, np.float32)):  # as the bare env refuses
        with pytest.raises(ValueError, match=r"real numbers of shape \(1,\), got \w+ of shape"):
            env.step(bad)
    assert env.unwrapped._position == 0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*different from the unwrapped")
        check_env(sb3_sequential_env("toy"), skip_render_check=True)


def test_the_sequential_env_pickles_mid_episode():
    env = sb3_sequential_env("toy", (0.2, 0.5))
    env.reset(seed=4)
    env.step(np.array([0.1], np.float32))
    twin = pickle.loads(pickle.dumps(env))
    assert isinstance(twin.env, UnitActions) and twin.action_space == env.action_space
    assert twin.target == env.target and twin.unwrapped._position == env.unwrapped._position == 1
    assert twin.unwrapped.core._model is not env.unwrapped.core._model
    for action in ([-0.4], [0.7]):  # two more steps alike, then the same next draw
        ours, theirs = (e.step(np.array(action, np.float32)) for e in (env, twin))
        assert ours[1] == theirs[1] and ours[2:4] == theirs[2:4]
        for key, value in ours[0].items():
            np.testing.assert_array_equal(value, theirs[0][key])
    env.reset()
    twin.reset()
    assert twin.target == env.target
    with pytest.raises(ValueError, match=r"is not in \[-1, 1\] \(rescaled actions\)"):
        twin.step(np.array([2.0], np.float32))


@pytest.mark.parametrize("bad", [None, 0.3, (0.3,), (0.1, 0.2, 0.3), ("0.1", "0.5"), (0.5, 0.2),
                                 (True, 0.5), (0.1, 1.0)])  # fmt: skip
def test_target_ranges_are_checked_before_anything_is_built(bad, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("built the environment first")

    monkeypatch.setattr("prunegym.agents.sb3_features.SequentialPruneEnv", refuse)
    with pytest.raises(ValueError, match="target range must be two numbers") as error:
        sb3_sequential_env("toy", bad)
    assert "\n" not in str(error.value)
    if bad is not None:  # SB3Agent's None: a fixed target
        with pytest.raises(ValueError, match="target range must be two numbers"):
            SB3Agent("PPO", target_range=bad)


def test_sequential_env_takes_a_fixed_target_as_a_range_only():
    with pytest.raises(ValueError, match=r"target_range=\(ρ, ρ\)"):
        sb3_sequential_env("toy", target=0.3)
    env = sb3_sequential_env("toy", (0.3, 0.3))
    env.reset(seed=0)
    assert env.target == 0.3 == env.unwrapped.core.target


def test_target_in_observation_appends_each_episode_s_target_on_reset_and_step():
    env = TargetInObservation(UnitActions(PruneEnv("toy")), 0.1, 0.5)
    assert isinstance(env, gym.ObservationWrapper) and env.target is None
    observation, _ = env.reset(options={"target": 0.25})
    assert observation.shape == (6,) and observation[-1] == np.float32(0.25)
    observation, *_ = env.step(np.zeros(5, np.float32))
    assert observation[-1] == np.float32(0.25) and observation[:5] == pytest.approx(0.475)
    with pytest.raises(ValueError, match="target"):
        env.reset(options={"target": 2.0})
    assert env.target == 0.25 == env.unwrapped.target


def test_ppo_trained_on_one_network_acts_on_another():
    kwargs = {"features_extractor_class": GroupSetExtractor,
              "features_extractor_kwargs": {"hidden": 16}}  # fmt: skip
    training = sb3_sequential_env("toy", (0.1, 0.6), tolerance=0.02)
    model = PPO("MultiInputPolicy", training, policy_kwargs=kwargs, n_steps=40, batch_size=20,
                n_epochs=2, gamma=0.5, seed=0, device="cpu")  # fmt: skip
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(80)
    after = list(model.policy.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))

    other_env = sb3_sequential_env(ResidualTask(), (0.1, 0.6), tolerance=0.02)
    other = transfer_policy(model, other_env)
    mine, theirs = model.policy.state_dict(), other.policy.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[name], theirs[name]) for name in mine)
    assert (other.gamma, other.n_steps, other.batch_size) == (0.5, 40, 20)  # its settings too
    steps = [group["state"] for group in (model.policy.optimizer.state_dict(),
                                          other.policy.optimizer.state_dict())]  # fmt: skip
    assert steps[0] and all(
        torch.equal(steps[0][k]["exp_avg"], steps[1][k]["exp_avg"]) for k in steps[0]
    )  # and Adam's moments
    assert other.observation_space["groups"].shape[0] == len(other_env.unwrapped.groups)
    core = other_env.unwrapped
    first_actions = []
    for target in (0.2, 0.5):  # a whole deterministic episode on the unseen network
        observation, _ = other_env.reset(options={"target": target})
        done, steps = False, 0
        while not done:
            action, _ = other.predict(observation, deterministic=True)
            observation, reward, done, _, info = other_env.step(action)
            first_actions += [action[0]] if steps == 0 else []
            steps += 1
        # in the window whatever the policy asks (the hard budget), after len(groups) steps
        assert steps == len(core.groups) and info["feasible"], info["sparsity"]
    assert first_actions[0] != first_actions[1]  # the policy reads the target
    other.learn(40)  # and it trains on

    unscaled = SequentialPruneEnv("toy")  # acts in [0, 0.95], not [-1, 1]
    with pytest.raises(ValueError, match="it acts in .* build both envs with sb3_sequential_env"):
        transfer_policy(model, unscaled)
    one_shot = PPO("MultiInputPolicy", PruneEnv("toy", observation="features"),
                   policy_kwargs=kwargs, n_steps=8, batch_size=8, device="cpu")  # fmt: skip
    with pytest.raises(ValueError, match="cannot transfer the policy: it acts in"):
        transfer_policy(one_shot, PruneEnv(ResidualTask(), observation="features"))
    flattened = PPO("MultiInputPolicy", training, n_steps=8, batch_size=8, device="cpu")
    with pytest.raises(ValueError, match="depend on the number of groups .*size") as error:
        transfer_policy(flattened, other_env)  # SB3's own extractor flattens all the groups
    assert "\n" not in str(error.value)
    for norm_obs in (True, False):  # observation statistics have one row per group
        normalised = PPO("MultiInputPolicy", VecNormalize(DummyVecEnv([lambda: training]),
                         norm_obs=norm_obs), policy_kwargs=kwargs, n_steps=8, batch_size=8,
                         device="cpu")  # fmt: skip
        if norm_obs:
            with pytest.raises(ValueError, match="VecNormalize with norm_obs=True"):
                transfer_policy(normalised, other_env)
        else:
            assert transfer_policy(normalised, other_env).observation_space == (
                other_env.observation_space
            )


def test_off_policy_models_transfer_with_an_empty_replay_buffer():
    kwargs = {"features_extractor_class": GroupSetExtractor,
              "features_extractor_kwargs": {"hidden": 8}}  # fmt: skip
    training = sb3_sequential_env("toy", (0.1, 0.6))
    model = SAC("MultiInputPolicy", training, policy_kwargs=kwargs, buffer_size=200,
                learning_starts=10, batch_size=8, seed=0, device="cpu")  # fmt: skip
    model.learn(30)
    other = transfer_policy(model, sb3_sequential_env(ResidualTask(), (0.1, 0.6)))
    mine, theirs = model.policy.state_dict(), other.policy.state_dict()
    assert all(torch.equal(mine[name], theirs[name]) for name in mine)
    assert other.buffer_size == 200 and other.replay_buffer.size() == 0
    assert torch.equal(other.log_ent_coef, model.log_ent_coef)  # the learned temperature
    other.learn(20)
    assert other.replay_buffer.size() == 20


def test_a_mixture_of_networks_pads_its_observations_without_changing_the_features():
    toy = sb3_sequential_env("toy", (0.2, 0.5))
    residual = sb3_sequential_env(ResidualTask(), (0.2, 0.5))
    mixture = TaskMixture([toy, residual])
    sizes = [len(toy.unwrapped.groups), len(residual.unwrapped.groups)]
    assert mixture.observation_space["groups"].shape[0] == max(sizes) != min(sizes)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*different from the unwrapped")
        check_env(mixture, skip_render_check=True)

    extractor = GroupSetExtractor(mixture.observation_space, hidden=8)
    small, large = int(np.argmin(sizes)), int(np.argmax(sizes))
    padded, info = mixture.reset(options={"task": small, "target": 0.3})
    alone, _ = [toy, residual][small].reset(options={"target": 0.3})
    full, _ = mixture.reset(options={"task": large, "target": 0.3})
    assert info["task"] == small and padded["present"].sum() == min(sizes)
    assert not padded["groups"][min(sizes) :].any() and full["present"].all()
    batch = {key: torch.from_numpy(np.stack([padded[key], full[key]])) for key in padded}
    with torch.no_grad():  # the padding rows change nothing, row by row in a mixed batch
        features = extractor(batch)
        assert torch.allclose(features[:1], extractor(_batch(alone)), atol=1e-6)
        assert torch.allclose(features[1:], extractor(_batch(full)), atol=1e-6)
        empty = {**_batch(padded), "present": torch.zeros(1, max(sizes))}
        assert torch.isfinite(extractor(empty)).all()


def test_a_mixture_seeds_its_picks_and_targets_and_refuses_without_changing_anything():
    mixture = TaskMixture([sb3_sequential_env("toy", (0.2, 0.5)),
                           sb3_sequential_env(ResidualTask(), (0.2, 0.5))])  # fmt: skip

    def episodes(seed):
        first = mixture.reset(seed=seed)[1]
        rest = [mixture.reset()[1] for _ in range(7)]
        return [(info["task"], info["target"]) for info in [first, *rest]]

    drawn = episodes(3)
    assert {task for task, _ in drawn} == {0, 1}
    assert episodes(3) == drawn  # seeded: the same picks and targets
    assert episodes(4) != drawn
    assert len({target for _, target in drawn}) == len(drawn)  # no stream repeats another

    observation, _ = mixture.reset(options={"task": 0, "target": 0.3})
    state = mixture.np_random.bit_generator.state
    for options in ({"task": 1, "target": 2.0}, {"target": 2.0}, {"task": 0, "colour": 1}):
        with pytest.raises(ValueError):
            mixture.reset(options=options)
        assert mixture.task == 0 and mixture.np_random.bit_generator.state == state
    with pytest.raises(ValueError):
        mixture.reset(seed=9, options={"task": 1, "target": 2.0})
    assert mixture.np_random.bit_generator.state == state
    _, _, done, _, info = mixture.step(np.zeros(1, np.float32))  # the episode goes on
    assert info["task"] == 0 and not done and info["group"] == mixture.envs[0].unwrapped.order[0]

    for task in (2, -1, True, "0"):
        with pytest.raises(ValueError, match="task must be an index below 2"):
            mixture.reset(options={"task": task})
    for wrong in ("toy", ["toy"], []):
        with pytest.raises(ValueError, match="takes a list of environments"):
            TaskMixture(wrong)
    with pytest.raises(ValueError, match="one action space"):
        TaskMixture([mixture.envs[0], SequentialPruneEnv("toy")])
    with pytest.raises(ValueError, match="TaskMixture reads the features observation"):
        TaskMixture([mixture.envs[0], PruneEnv("toy")])
    with pytest.raises(ValueError, match="single networks' features observations"):
        TaskMixture([mixture])


class _Picks(gym.Wrapper):
    """Records the task of each episode."""

    def __init__(self, env):
        super().__init__(env)
        self.picks = []

    def reset(self, **kwargs):
        observation, info = self.env.reset(**kwargs)
        self.picks.append(info["task"])
        return observation, info


def test_ppo_trained_on_a_mixture_of_networks_acts_on_each_alone():
    kwargs = {"features_extractor_class": GroupSetExtractor,
              "features_extractor_kwargs": {"hidden": 8}}  # fmt: skip
    mixture = _Picks(TaskMixture([sb3_sequential_env("toy", (0.1, 0.6)),
                                  sb3_sequential_env(ResidualTask(), (0.1, 0.6))]))  # fmt: skip
    model = PPO("MultiInputPolicy", mixture, policy_kwargs=kwargs, n_steps=32, batch_size=16,
                n_epochs=1, seed=0, device="cpu")  # fmt: skip
    model.learn(64)
    assert set(mixture.picks) == {0, 1}  # both networks were trained on
    single = sb3_sequential_env("toy", (0.3, 0.3))
    alone = transfer_policy(model, single)
    observation, _ = single.reset(seed=0)
    action, _ = alone.predict(observation, deterministic=True)
    padded, _ = mixture.reset(options={"task": 0, "target": 0.3})
    assert np.allclose(model.predict(padded, deterministic=True)[0], action, atol=1e-5)
