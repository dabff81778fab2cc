"""A tiny residual CNN with BatchNorm as a task (random weights, trained statistics): the
batched forward and adaptive BatchNorm are tested on it."""

from __future__ import annotations

import torch
from torch import nn

from prunegym.tasks.base import Task


class ResidualBlockNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.ModuleDict({
            "stem": nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
            "body": nn.Sequential(
                nn.Conv2d(8, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8),
            ),
        })  # fmt: skip
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * 6 * 6, 16), nn.PReLU(16),
                                  nn.Linear(16, 3))  # fmt: skip

    def forward(self, x):
        x = self.features["stem"](x)
        x = torch.relu(x + self.features["body"](x))  # couples the stem's and body's outputs
        return self.head(nn.functional.avg_pool2d(x, 2))


class ResidualTask(Task):
    """Tiny residual CNN with BatchNorm (random weights, trained statistics) on random images."""

    name = "residual"
    metric = "mse"
    higher_is_better = False

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randn(40, 1, 12, 12, generator=generator)
        self.calibration = torch.randn(64, 1, 12, 12, generator=generator)
        self.reference = self.build_model()(self.images).detach()

    def build_model(self):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1)
            model = ResidualBlockNet()
            model.train()
            with torch.no_grad():  # BatchNorm statistics that are not the identity
                for _ in range(3):
                    model(torch.randn(32, 1, 12, 12) * 2 + 0.5)
        return model.eval()

    def components(self, model):
        return {"features": model.features, "head": model.head}

    @property
    def example_inputs(self):
        return self.images[:2]

    def calibration_batches(self):
        return self.calibration.split(32)

    @torch.no_grad()
    def evaluate(self, model):
        return self.metrics_of_outputs(model(self.images))

    @property
    def evaluation_batch(self):
        return self.images

    def metrics_of_outputs(self, outputs):
        return {"mse": float((outputs - self.reference).pow(2).mean())}
