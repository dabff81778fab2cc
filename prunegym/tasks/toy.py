"""A tiny task that steps in milliseconds: a seeded random MLP autoencoder judged by fidelity.

It doubles as the template for a user's own task (about 30 lines).
"""

from __future__ import annotations

import torch
from torch import nn

from prunegym.tasks.base import Task
from prunegym.tasks.options import check_at_least


class ToyTask(Task):
    """Reproduce the dense model's outputs: 16 → 32 → 24 → 8 → 24 → 32 → 16, ReLU.

    ## Description
    The weights are drawn from a fixed seed (no training, no files). The data are 256 seeded
    Gaussian inputs with mean 0.5. It has the same five-group shape as the MNIST autoencoder:
    two encoder groups, two decoder groups and one encoder-decoder coupling group.

    ## Metric
    ``mse``: mean squared difference between the pruned and the dense model's outputs on the
    evaluation inputs (lower is better, 0 for the dense model), and ``relative_error``:
    ``mse`` over the mean square of the dense outputs.
    """

    name = "toy"
    metric = "mse"
    higher_is_better = False

    def __init__(self, seed: int = 0, samples: int = 256) -> None:
        check_at_least("task 'toy'", 1, samples=samples)
        generator = torch.Generator().manual_seed(seed)
        self.seed = seed
        self.inputs = torch.randn(samples, 16, generator=generator) + 0.5
        self.calibration = torch.randn(samples, 16, generator=generator) + 0.5
        self._teacher = self.build_model()  # the dense model, for reference outputs
        self.reference = self._teacher(self.inputs).detach()
        self.metric_scale = float(self.reference.pow(2).mean())

    def build_model(self) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = nn.Sequential()
            model.encoder = nn.Sequential(
                nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 24), nn.ReLU(), nn.Linear(24, 8)
            )
            model.decoder = nn.Sequential(
                nn.Linear(8, 24), nn.ReLU(), nn.Linear(24, 32), nn.ReLU(), nn.Linear(32, 16)
            )
        return model.eval()

    def components(self, model: nn.Module) -> dict[str, nn.Module]:
        return {"encoder": model.encoder, "decoder": model.decoder}

    def options(self) -> dict[str, object]:
        return {"seed": self.seed, "samples": len(self.inputs)}

    @property
    def example_inputs(self) -> torch.Tensor:
        return self.inputs[:2]

    def calibration_batches(self):
        return self.calibration.split(64)

    def loss(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self._teacher(batch)
        return nn.functional.mse_loss(model(batch), target)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return self.metrics_of_outputs(model(self.inputs))

    # Optional: lets PruneEnv.evaluate_batch run K candidates as one forward.
    @property
    def evaluation_batch(self) -> torch.Tensor:
        return self.inputs

    # Optional: lets PruneEnv.evaluate_batch run candidates as sliced chains.
    def evaluation_chain(self, model: nn.Module):
        return self.inputs, [*model.encoder, *model.decoder]

    def metrics_of_outputs(self, outputs: torch.Tensor) -> dict[str, float]:
        mse = float((outputs - self.reference).pow(2).mean())
        return {"mse": mse, "relative_error": mse / self.metric_scale}
