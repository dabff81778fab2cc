"""Network slimming: the proximal step, sparsity training and the bn-scale criterion."""

import numpy as np
import pytest
import torch
from torch import nn

from prunegym.tasks.fitting import batchnorm_layers, proximal_step, slimming


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 4 * 4, 3),
    )  # fmt: skip


def test_proximal_step_zeroes_every_gamma_below_the_threshold_and_shrinks_the_rest():
    model = _net()
    bn = batchnorm_layers(model)[0]
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.05, -0.09, 0.1, -0.5, 0.3, 0.0]))
    proximal_step([bn], 0.1)
    expected = torch.tensor([0.0, 0.0, 0.0, -0.4, 0.2, 0.0])
    assert torch.allclose(bn.weight, expected) and int((bn.weight == 0).sum()) == 4


def _data():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(64, 1, 4, 4, generator=generator)
    return x, (x.sum((1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 1).long()


def _loss(model, batch):
    return nn.functional.cross_entropy(model(batch[0]), batch[1])


def test_proximal_slimming_makes_scales_exactly_zero_and_subgradient_slimming_does_not():
    def trained(lam, proximal):
        model = _net()
        slimming(model, lam, 100, lambda e: [_data()], _loss, proximal=proximal)
        return batchnorm_layers(model)[0].weight.detach()

    plain = float(trained(0.0, False).abs().mean())
    subgradient, proximal = trained(2.0, False), trained(2.0, True)
    assert float(subgradient.abs().mean()) < 0.1 * plain  # L1 shrinks γ ...
    assert int((subgradient == 0).sum()) == 0  # ... but never to exactly 0
    assert float(proximal.abs().mean()) < 0.2 * plain and int((proximal == 0).sum()) >= 3


def test_slimming_refuses_models_without_batchnorm():
    with pytest.raises(ValueError, match="needs BatchNorm"):
        slimming(nn.Linear(2, 2), 0.1, 1, lambda e: [], _loss)


def test_bn_scale_criterion_masks_the_smallest_gammas_first():
    from prunegym.pruning.channel.pruner import SoftPruner

    model = _net()
    bn = batchnorm_layers(model)[0]
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.9, 0.1, 0.5, 0.05, 0.7, 0.3]))
    x, _ = _data()
    pruner = SoftPruner(model, {"all": model}, x[:2], lambda: [x], lambda m, b: m(b),
                        criterion="bn-scale", compensation="none")  # fmt: skip
    assert pruner.orders[0][:3].tolist() == [3, 1, 5]
    pruner.apply(np.array([0.5]))
    assert bn.weight[[3, 1, 5]].abs().sum() == 0 and bn.weight[[0, 2, 4]].abs().min() > 0


def test_bn_scale_needs_batchnorm_in_every_group():
    from prunegym.envs.prune_env import PruneEnv

    with pytest.raises(ValueError, match="have no BatchNorm layer"):
        PruneEnv("toy", criterion="bn-scale", compensation="none")
