"""The pixel pendulum, the TD-MPC agent, training/resume, and the nested pruning task."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import prunegym  # noqa: F401  (registers the ids)
from prunegym.tasks.tdmpc.agent import TDMPC
from prunegym.tasks.tdmpc.buffer import EpisodeBuffer
from prunegym.tasks.tdmpc.config import TDMPCConfig
from prunegym.tasks.tdmpc.controllers import (
    energy_lqr_controller,
    planning_controller,
    random_controller,
    sequence_costs,
)
from prunegym.tasks.tdmpc.episodes import EpisodeRunner
from prunegym.tasks.tdmpc.pendulum import PendulumRenderer


def _quiet_check(env):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the [-2, 2] torque box draws a "use [-1, 1]" hint
        check_env(env, skip_render_check=True)


def test_pixel_pendulum_passes_check_env_and_stacks_frames():
    env = gym.make("prunegym/PixelPendulum-v0")
    _quiet_check(env.unwrapped)
    _quiet_check(env)
    observation, _ = env.reset(seed=1)
    assert observation.shape == (3, 28, 28) and observation.dtype == np.uint8
    assert np.array_equal(observation[0], observation[2])  # reset repeats the first frame
    steps, truncated = 0, False
    while not truncated:
        observation, reward, terminated, truncated, _ = env.step(np.array([2.0], np.float32))
        steps += 1
        assert not terminated and -33 < reward <= 0  # two Pendulum-v1 steps per decision
    assert steps == 100  # 200 simulator steps, action repeat 2


def test_cached_frames_match_the_live_renderer():
    cached = PendulumRenderer(bins=4096)
    live = PendulumRenderer(bins=0)
    for angle in np.random.default_rng(0).uniform(-20, 20, 50):
        difference = np.abs(cached.frame(angle).astype(int) - live.frame(angle).astype(int))
        assert difference.mean() < 1.0 and difference.max() <= 64  # 0.09° quantisation
    upright, hanging = live.frame(0.0), live.frame(np.pi)
    assert upright[:14].min() < 200 and upright[18:].min() >= 200  # the rod points up
    assert hanging[14:].min() < 200 and hanging[:10].min() >= 200


def _small_config() -> TDMPCConfig:
    config = TDMPCConfig()
    config.model.hidden = 64
    config.plan.samples, config.plan.elites, config.plan.pi_samples = 32, 8, 4
    config.learn.batch = 16
    return config


def _fixed_batch(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    observations = torch.randint(0, 256, (4, 16, 3, 28, 28), generator=generator).to(torch.uint8)
    actions = torch.rand(3, 16, 1, generator=generator) * 2 - 1
    rewards = -torch.rand(3, 16, generator=generator) * 30
    return observations, actions, rewards


def test_one_update_step_decreases_each_loss_on_a_fixed_batch():
    agent = TDMPC(_small_config(), seed=0)
    batch = _fixed_batch()
    agent.update(*batch)  # the reward and Q heads start at zero: take one step first
    with torch.no_grad():
        before = {k: float(v) for k, v in agent.losses(*batch).items() if k != "latents"}
    agent.update(*batch)
    with torch.no_grad():
        after = {k: float(v) for k, v in agent.losses(*batch).items() if k != "latents"}
    for key in ("consistency", "reward", "value"):
        assert after[key] < before[key], (key, before[key], after[key])
    latents = agent.model.encode(batch[0][0]).detach()[None]
    pi_before = agent.update_pi(latents)  # the loss before its step
    with torch.no_grad():
        q1, q2 = agent.model.q(latents[0], agent.model.pi(latents[0]))
    assert -float(torch.min(q1, q2).mean()) < pi_before


def test_planning_returns_actions_in_bounds():
    agent = TDMPC(_small_config(), seed=0)
    observations = _fixed_batch()[0][0][:5]
    for plan, std in ((True, 0.0), (True, 0.5), (False, 2.0)):
        actions = agent.act(observations, plan=plan, std=std)
        assert actions.shape == (5, 1)
        assert torch.all(actions.abs() <= 1.0) and torch.all(torch.isfinite(actions))


def test_buffer_samples_aligned_sequences():
    buffer = EpisodeBuffer(4, length=10, observation_shape=(1, 2, 2), seed=0)
    frames = np.arange(11, dtype=np.uint8)[:, None, None, None].repeat(4, 1).reshape(11, 1, 2, 2)
    buffer.add(frames, np.arange(10, dtype=np.float32)[:, None] / 10, -np.arange(10.0))
    observations, actions, rewards = buffer.sample(8, horizon=3)
    assert observations.shape == (4, 8, 1, 2, 2) and actions.shape == (3, 8, 1)
    start = observations[0, :, 0, 0, 0].long()
    assert torch.equal(observations[3, :, 0, 0, 0].long(), start + 3)
    assert torch.allclose(rewards[0], -start.float())


def test_training_resumes_from_its_checkpoint(tmp_path):
    from prunegym.training.tdmpc import Trainer

    config = _small_config()
    config.learn.seed_steps = 200
    first = Trainer(tmp_path, steps=400, seed=1, config=config, eval_every=400)
    first.run()
    assert (tmp_path / "log.csv").read_text().count("\n") == 3  # header + 2 episodes
    assert (tmp_path / "curve.png").exists() and (tmp_path / "agent.pt").exists()
    saved = torch.load(tmp_path / "agent.pt", weights_only=True)
    assert saved["calibration_actions"].shape == (4, config.env.decisions)  # replayed by tasks
    resumed = Trainer(tmp_path, steps=600, seed=1, config=config, eval_every=400)
    resumed.load_checkpoint()
    assert resumed.env_step == 400 and len(resumed.buffer) == 2
    for saved, loaded in zip(
        first.agent.model.parameters(), resumed.agent.model.parameters(), strict=True
    ):
        assert torch.equal(saved, loaded)
    rows = resumed.run()
    assert [r["env_step"] for r in rows] == [200, 400, 600]


def test_classical_controller_is_far_better_than_random():
    runner = EpisodeRunner(list(range(4)))
    random_return = runner.run(random_controller(0)).mean()
    classical = runner.run(energy_lqr_controller()).mean()
    assert random_return < -800 and classical > -300


def test_the_planners_equations_give_the_episode_returns_of_the_wrapped_pendulum():
    runner = EpisodeRunner(list(range(40_000, 40_003)))
    played, classical = [], energy_lqr_controller()

    def recorded(observations, states):
        actions = classical(observations, states)
        played.append(np.clip(actions.astype(np.float32), -1.0, 1.0)[:, 0])
        return actions

    returns = runner.run(recorded)
    starts = []
    for env, seed in zip(runner.envs, runner.seeds, strict=True):
        env.reset(seed=seed)
        starts.append(env.unwrapped.state)
    starts = np.array(starts, dtype=np.float64)
    # (episodes, 1, 100) in float32, as the wrappers pass them: replayed open loop, the
    # upright balance amplifies any rounding difference into another trajectory
    actions = np.stack(played, axis=1)[:, None, :]
    costs = sequence_costs(starts[:, 0], starts[:, 1], actions, repeat=2)[:, 0]
    np.testing.assert_allclose(-costs, returns, rtol=1e-9)
    with pytest.raises(ValueError, match="samples must be an integer >= 2"):
        planning_controller(samples=1)


def test_planning_controller_does_not_fall_behind_the_classical_controller_it_starts_from():
    runner = EpisodeRunner(list(range(40_000, 40_003)))
    classical = runner.run(energy_lqr_controller())
    planned = runner.run(planning_controller(horizon=10, samples=16, iterations=2))
    assert planned.mean() >= classical.mean() - 0.5  # its candidates include the classical plan
    actions = planning_controller(horizon=5, samples=8)(None, np.array([[3.0, 0.0], [0.1, 1.0]]))
    assert actions.shape == (2, 1) and np.all(np.abs(actions) <= 1.0)


@pytest.fixture(scope="module")
def tdmpc_task():
    from prunegym.tasks.tdmpc_pendulum import TDMPCPendulumTask

    return TDMPCPendulumTask(episodes=3)


def test_shipped_agent_is_far_above_random(tdmpc_task):
    assert tdmpc_task.random_return < -800
    assert tdmpc_task.dense_return > tdmpc_task.random_return + 600


def test_tdmpc_env_passes_check_env_and_c0_is_the_dense_return(tdmpc_task):
    from prunegym.envs.prune_env import PruneEnv

    env = PruneEnv(tdmpc_task, target=0.2)
    _quiet_check(env)
    labels = [g.label for g in env.groups]
    assert "encoder-dynamics-reward-pi-Q 1" in labels and len(env.groups) == 15
    _, info = env.reset()
    _, _, _, _, info = env.step(np.zeros(len(env.groups)))
    assert info["return"] == tdmpc_task.dense_return and info["normalized"] == 1.0
    _, _, _, _, info = env.step(np.full(len(env.groups), 0.5))
    assert info["return"] != tdmpc_task.dense_return and info["sparsity"] > 0.4


def test_a_tdmpc_env_pickles_with_its_renderer(tdmpc_task):
    import pickle

    from prunegym.envs.prune_env import PruneEnv

    env = PruneEnv(tdmpc_task, target=0.3)  # its renderer has drawn and holds a pygame clock
    twin = pickle.loads(pickle.dumps(env))
    coefficients = np.full(len(env.groups), 0.3)
    assert twin.step(coefficients)[4]["return"] == env.step(coefficients)[4]["return"]


def test_missing_tdmpc_checkpoint_is_a_clear_error(tmp_path):
    from prunegym.tasks.checkpoints import CheckpointError
    from prunegym.tasks.tdmpc_pendulum import load_world_model

    with pytest.raises(FileNotFoundError, match="TD-MPC checkpoint"):
        load_world_model(tmp_path / "nope.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_world_model(tmp_path / "bad.pt")


def test_tdmpc_env_is_registered():
    env = gym.make("prunegym/TDMPCPendulum-v0", episodes=2, target=0.3)
    _, info = env.reset(seed=0)
    assert info["target"] == 0.3 and info["normalized"] == 1.0
    assert env.unwrapped.task.describe()["episodes"] == 2


def test_plan_mode_evaluates_with_the_planner():
    from prunegym.tasks.tdmpc_pendulum import TDMPCPendulumTask

    task = TDMPCPendulumTask(episodes=1, mode="plan", calibration_episodes=1)
    metrics = task.evaluate(task.build_model())
    assert metrics["return"] == task.dense_return and metrics["normalized"] == 1.0
    assert task.dense_return > task.random_return + 600
    with pytest.raises(ValueError, match="mode"):
        TDMPCPendulumTask(mode="dream")


def test_the_solve_picture_shows_the_held_out_test_episodes(tdmpc_task, tmp_path, monkeypatch):
    from prunegym.agents import make_agent
    from prunegym.envs.prune_env import PruneEnv
    from prunegym.results import plots
    from prunegym.results.artifacts import save_task_picture

    env = PruneEnv(tdmpc_task, target=0.3, tolerance=0.05)
    result = make_agent("uniform", progress=False).run(env)
    assert len(result.test_values) == tdmpc_task.test_episodes == 100
    drawn = {}
    original = plots.save_return_bars

    def capture(path, returns, frames=None, **options):
        drawn.update(returns=returns, frames=frames, **options)
        return original(path, returns, frames, **options)

    monkeypatch.setattr(plots, "save_return_bars", capture)
    path = save_task_picture(env, result, tmp_path / "picture.png")
    assert (
        path.read_bytes()[:4] == b"\x89PNG" and drawn["episodes_label"] == "held-out test episode"
    )
    assert list(drawn["returns"].values()) == [result.dense_test_values, result.test_values]
    assert drawn["frames"].ndim == 4 and "search episode" in drawn["frame_label"]
