import pytest
import torch

from prunegym.pruning.channel.importance import CRITERIA, check_criterion, compensated_scores


def test_compensated_score_is_column_energy_times_input_variance(mnist_env):
    env = mnist_env
    env.reset()
    group = env.groups[4]  # latent: read by decoder.0
    decoder_first = env.model.decoder[0]
    latents = torch.cat([env.model.encoder(b) for b in env.task.calibration_batches()]).detach()
    expected = decoder_first.weight.detach().double().pow(2).sum(0) * latents.double().var(
        0, unbiased=False
    )
    from prunegym.pruning.channel.statistics import collect_statistics

    stats = collect_statistics(
        env.model, {"decoder.0": decoder_first}, env.task.calibration_batches(), env.task.forward
    )
    scores = compensated_scores(group, dict(env.model.named_modules()), stats)
    assert torch.allclose(scores, expected, rtol=1e-4)


@pytest.mark.parametrize("criterion", [c for c in CRITERIA if c != "bn-scale"])  # no BN in toy
def test_every_criterion_gives_a_permutation_per_group(criterion):
    from prunegym.envs.prune_env import PruneEnv

    env = PruneEnv("toy", criterion=criterion)
    for group, order in zip(env.groups, env.pruner.orders, strict=True):
        assert sorted(order.tolist()) == list(range(group.channels))


def test_a_criterion_without_signal_warns_and_gives_finite_features():
    from prunegym.envs.prune_env import PruneEnv
    from prunegym.pruning.channel.importance import UninformativeScoresWarning

    with pytest.warns(UninformativeScoresWarning, match="taylor.*non-finite.*no gradient"):
        env = PruneEnv("toy", criterion="taylor", observation="features")  # its own teacher
    observation, _ = env.reset()
    assert env.observation_space.contains(observation)
    assert all(torch.equal(order, torch.arange(len(order))) for order in env.pruner.orders)


def test_random_criterion_is_seeded():
    from prunegym.envs.prune_env import PruneEnv

    first = PruneEnv("toy", criterion="random", seed=3).pruner.orders
    again = PruneEnv("toy", criterion="random", seed=3).pruner.orders
    other = PruneEnv("toy", criterion="random", seed=4).pruner.orders
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_unknown_criterion_lists_the_valid_ones():
    with pytest.raises(ValueError, match="l1, l2, random, taylor, compensated"):
        check_criterion("fisher")
