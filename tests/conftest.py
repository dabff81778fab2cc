"""Shared fixtures: the toy task, the shipped MNIST autoencoder, and small hand-built models."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")


@pytest.fixture(autouse=True)
def sb3_logs_in_the_test_folder(tmp_path, monkeypatch):
    """A model trained without a logger of its own makes an empty ``SB3-<date>`` folder in the
    system's temporary folder on each ``learn``; tests put it in their own folder instead."""
    monkeypatch.setenv("SB3_LOGDIR", str(tmp_path / "sb3-logs"))


@pytest.fixture(scope="session")
def mnist_task():
    from prunegym.tasks import make_task

    return make_task("mnist-ae")


@pytest.fixture(scope="session")
def mnist_env(mnist_task):
    from prunegym.envs.prune_env import PruneEnv

    return PruneEnv(mnist_task, criterion="compensated", compensation="mean")


@pytest.fixture
def toy_env():
    from prunegym.envs.prune_env import PruneEnv

    return PruneEnv("toy")


class ResidualConvNet(nn.Module):
    """Conv-BN-ReLU stem, a residual block, ConvTranspose head: exercises every mask rule."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(8, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 2, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        h = torch.relu(h + self.block(h))
        return self.decoder(h)


@pytest.fixture
def far_policy():
    """A ``SetPolicy(hidden=8)`` whose learned correction is far from 1 (its last layer drawn
    with standard deviation 3), the same whatever ran before."""
    from prunegym.agents.learned_policy import SetPolicy

    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        policy = SetPolicy(hidden=8)
        policy.decide[-1].weight.normal_(std=3.0)
    return policy


def randomise_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give BatchNorm layers non-trivial statistics and affine parameters, then eval mode."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            size = module.num_features
            module.running_mean.copy_(torch.randn(size, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(size, generator=generator) * 0.1)
    return model.eval()


@pytest.fixture
def conv_net():
    torch.manual_seed(0)
    model = randomise_norms(ResidualConvNet())
    components = {"encoder": model.encoder, "block": model.block, "decoder": model.decoder}
    return model, components, torch.randn(2, 3, 6, 6)
