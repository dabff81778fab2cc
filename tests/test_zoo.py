"""The zoo: small networks trained from a seed, for training and validating transferable
policies."""

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks import make_task
from prunegym.tasks.zoo import KINDS, zoo_architecture


def test_architectures_are_drawn_from_the_seed_alone_and_cycle_through_the_kinds():
    drawn = [zoo_architecture(seed) for seed in range(30)]
    assert drawn == [zoo_architecture(seed) for seed in range(30)]
    assert [a["kind"] for a in drawn[:6]] == [*KINDS, *KINDS]
    assert len({str(a) for a in drawn}) == 30  # thirty different networks
    autoencoders = [a for a in drawn if a["kind"] == "autoencoder"]
    assert all(a["activation"] != "tanh" for a in autoencoders)
    assert all(a["widths"] == a["widths"][::-1] for a in autoencoders)  # mirrored


def test_a_zoo_classifier_is_trained_when_built_and_the_same_each_time():
    first, again = make_task("zoo", seed=3), make_task("zoo", seed=3)
    assert first.architecture["kind"] == "classifier"
    metrics = first.evaluate(first.load_model())
    assert metrics["loss"] < 0.7 and metrics["accuracy"] > 0.8  # chance: 2.30 nats, 0.1
    for a, b in zip(first.load_model().parameters(), again.load_model().parameters(), strict=True):
        assert torch.equal(a, b)
    assert first.options() == {"seed": 3, "calibration_size": 500}


def test_a_zoo_autoencoder_has_a_coupling_group_and_its_features_pass_check_env():
    task = make_task("zoo", seed=4)
    assert task.architecture["kind"] == "autoencoder"
    useless = float(task.test_images.var(0).mean())  # the mean digit's loss
    assert task.evaluate(task.load_model())["loss"] < 0.5 * useless
    env = PruneEnv(task, granularity="channel", observation="features", target=0.3)
    assert any(group.kind == "coupling" for group in env.unwrapped.groups)
    check_env(env, skip_render_check=True)
    observation, _ = env.reset()
    _, _, _, _, info = env.step(np.full(env.action_space.shape, 0.3, dtype=np.float32))
    assert abs(info["sparsity"] - 0.3) < 0.15 and np.isfinite(info["metric"])


def test_a_zoo_convnet_prunes_its_convolutions_and_stacks_candidates():
    env = PruneEnv(make_task("zoo", seed=2), granularity="channel", target=0.4)
    assert env.task.architecture["kind"] == "convnet"
    assert {"features", "head"} <= {c for g in env.unwrapped.groups for c in g.components}
    rows = np.array([[0.2, 0.3, 0.4], [0.6, 0.1, 0.5]])[:, : len(env.unwrapped.groups)]
    together = env.unwrapped.evaluate_batch(rows)
    one_by_one = [env.unwrapped.evaluate_batch(row[None])[0] for row in rows]
    for a, b in zip(together, one_by_one, strict=True):
        assert a["metric"] == pytest.approx(b["metric"], rel=1e-5)


@pytest.mark.parametrize("seed", [-1, 1.5, "3"])
def test_a_zoo_seed_that_is_not_a_count_is_refused_in_one_line(seed):
    with pytest.raises(ValueError, match="task 'zoo' option seed") as error:
        make_task("zoo", seed=seed)
    assert "\n" not in str(error.value)
