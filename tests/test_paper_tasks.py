"""The elimination-compensation paper's tasks: the MNIST classifier and the diffusion–sorption
PDE data and regression, with PruneEnv at weight granularity."""

import numpy as np
import pytest

from prunegym.tasks.data.diffusion_sorption import generate, solve, total_mass


def test_pde_generator_is_deterministic_for_a_seed():
    first, again, other = generate(3, seed=4), generate(3, seed=4), generate(3, seed=5)
    assert first.u.shape == (3, 10, 64) and first.mu.shape == (3, 2)
    assert np.array_equal(first.u, again.u) and np.array_equal(first.mu, again.mu)
    assert not np.array_equal(first.u, other.u)


def test_pde_solver_conserves_dissolved_plus_sorbed_mass_in_a_closed_tube():
    u0 = np.random.default_rng(0).uniform(0.0, 0.2, 64)
    times = np.linspace(50, 500, 10)
    u = solve(u0, 5e-4, 3.5e-4, times, closed=True)
    mass = total_mass(u, 3.5e-4)
    assert np.allclose(mass, total_mass(u0, 3.5e-4), rtol=1e-5)
    assert u[-1].std() < 0.5 * u0.std()  # diffusion smooths the initial noise


def test_pde_source_fills_the_tube_within_the_maximum_principle():
    data = generate(4, seed=0)
    mass = np.stack([total_mass(data.u[s], data.mu[s, 1]) for s in range(4)])
    assert np.all(np.diff(mass, axis=1) > 0)  # the source at x = 0 only adds mass
    assert data.u.min() >= data.u0.min() - 1e-6 and data.u.max() <= 1 + 1e-6
    assert np.all(data.u[:, -1, 0] > data.u[:, -1, -1])  # high near the source


@pytest.fixture(scope="module")
def classifier_env():
    from prunegym.envs.prune_env import PruneEnv

    return PruneEnv("mnist-classifier", granularity="weight", target=0.5)


def test_weight_env_has_one_group_per_layer_and_passes_the_env_checker(classifier_env):
    from gymnasium.utils.env_checker import check_env

    env = classifier_env
    assert [g.label for g in env.groups] == ["mlp 1", "mlp 2", "mlp 3"]
    assert env.channels.tolist() == [784 * 64, 64 * 64, 64 * 10]
    assert env.criterion == "elimination-compensation" and env.compensation == "optimal"
    assert 0.3 < env.dense_metric < 0.4 and env.dense_metrics["accuracy"] > 0.88
    check_env(env, skip_render_check=True)


def test_weight_env_step_zeroes_the_fraction_and_reset_restores_exactly(classifier_env):
    import torch

    env = classifier_env
    # The shipped dense weights (the module's env may hold an earlier test's last step).
    dense = env.task.build_model().state_dict()
    env.reset()
    _, _, _, _, info = env.step(np.array([0.5, 0.25, 0.0]))
    first = env.model[0].weight
    assert int((first == 0).sum()) == round(0.5 * 784 * 64)
    assert int((env.model[2].weight == 0).sum()) == round(0.25 * 64 * 64)
    assert not torch.equal(env.model[0].bias, dense["0.bias"])  # compensated
    kept = env.pruner.total_parameters - 25088 - 1024
    assert info["sparsity"] == pytest.approx(1 - kept / env.pruner.total_parameters)
    env.reset()
    assert all(torch.equal(v, dense[k]) for k, v in env.model.state_dict().items())
    with pytest.raises(ValueError, match="nothing smaller to export"):
        env.export(np.full(3, 0.2))


def test_elimination_compensation_beats_magnitude_at_half_the_weights():
    from prunegym.envs.prune_env import PruneEnv

    losses = {}
    for criterion, compensation in (("elimination-compensation", "optimal"),
                                    ("magnitude", "none")):  # fmt: skip
        env = PruneEnv("mnist-classifier", granularity="weight", criterion=criterion,
                       compensation=compensation, target=0.5)  # fmt: skip
        losses[criterion] = env.step(np.full(3, 0.5))[4]["loss"]
    assert losses["elimination-compensation"] < losses["magnitude"]


def test_solvers_run_unchanged_at_weight_granularity(classifier_env):
    from prunegym.agents import make_agent

    result = make_agent("fd-momentum", progress=False).run(classifier_env, 60)
    assert result.evaluations <= 60 and len(result.coefficients) == 3
    uniform = make_agent("uniform", progress=False).run(classifier_env)
    assert uniform.feasible and abs(uniform.sparsity - 0.5) <= 0.01
    assert result.env_options["granularity"] == "weight"


def test_diffusion_sorption_task_loads_its_shipped_checkpoints():
    from prunegym.envs.prune_env import PruneEnv
    from prunegym.tasks import make_task

    for architecture, weights in ((1, 4256), (2, 8208)):
        task = make_task("diffusion-sorption", architecture=architecture, noise=0.005)
        model = task.build_model()
        assert sum(layer.weight.numel() for layer in model if hasattr(layer, "weight")) == weights
        assert task.evaluate(model)["mse"] < 1e-3 and task.test_x.shape == (12800, 68)
    env = PruneEnv(task, granularity="weight", target=0.3)
    assert len(env.groups) == 6 and env.dense_metric < 1e-3
    with pytest.raises(ValueError, match="noise must be one of"):
        make_task("diffusion-sorption", noise=0.02)


@pytest.mark.parametrize(
    "env_id", ["prunegym/MNISTClassifier-v0", "prunegym/DiffusionSorption-v0",
               "prunegym/MNISTConvNet-v0"],
)  # fmt: skip
def test_paper_ids_are_registered_and_pass_both_env_checkers(env_id):
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(env_id, target=0.3)
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=False)
    granularity = "channel" if "ConvNet" in env_id else "weight"
    assert env.unwrapped.granularity == granularity and env.spec.max_episode_steps == 50


def test_convnet_prunes_by_bn_scale_on_its_shipped_checkpoint():
    from prunegym.envs.prune_env import PruneEnv

    env = PruneEnv("mnist-convnet", criterion="bn-scale", compensation="none", target=0.3)
    assert [g.channels for g in env.groups] == [16, 32] and env.dense_metric > 0.9
    info = env.step(np.full(2, 0.5))[4]
    assert info["pruned_channels"] == [8, 16] and info["accuracy"] < env.dense_metric


def test_the_fully_connected_reference_has_no_more_weights_than_the_pruned_network():
    from prunegym.tasks.mnist_classifier import fully_connected_width, weight_count

    assert weight_count(32) == 26_432 and weight_count(64) == 54_912  # Table 1
    for hidden in (32, 64):
        for ratio in (0.1, 0.5, 0.9):
            width = fully_connected_width(hidden, ratio)
            assert weight_count(width) <= (1 - ratio) * weight_count(hidden)
            assert weight_count(width + 1) > (1 - ratio) * weight_count(hidden)


def test_solve_at_weight_granularity_writes_the_masked_weights_and_validates(tmp_path, capsys):
    import torch

    from prunegym.agents import Result
    from prunegym.cli.main import main
    from prunegym.tasks.data.mnist import load_mnist_split
    from prunegym.tasks.mnist_classifier import build_classifier, classifier_metrics

    out = tmp_path / "run"
    argv = ["solve", "mnist-classifier", "--granularity", "weight", "--solver", "uniform"]
    assert main([*argv, "--target", "0.5", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "coefficients.png", "masked_state_dict.pt", "result.json"]  # fmt: skip
    result = Result.load(out / "result.json")
    model = build_classifier(64)
    model.load_state_dict(torch.load(out / "masked_state_dict.pt"))
    split = load_mnist_split(None)
    loss = classifier_metrics(model.eval(), split.test_images, split.test_labels)["loss"]
    assert loss == pytest.approx(result.metric, rel=1e-6)
    assert main(["validate", str(out / "result.json")]) == 0
    assert main(["export", str(out / "result.json"), "--out", str(tmp_path / "m.pt2")]) == 2
    assert "nothing smaller to export" in capsys.readouterr().err
