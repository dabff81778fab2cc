"""The elimination-compensation paper's PDE regression: an MLP maps ``(μ, t, x, u₀)`` to ``u``.

Data: :mod:`prunegym.tasks.data.diffusion_sorption` (100 seeded samples, 10 times, 64 cells). The 68
inputs are ``μ`` as ``log2(D/D_ref)`` and ``log2(k/k_ref)`` (both in [−1, 1]), ``t/500``,
``x`` and the 64 initial values; the output is ``u(t, x)``. Samples 0–79 train, 80–99 test
(51,200 and 12,800 rows). Noise ``U(−a, a)`` (``a`` = 0, 0.005 or 0.01, seeded) is added to
every target, as in the paper. Architectures (Table 2), Tanh between layers:

- 1: 68-32-32-32-1 (4,256 weights);
- 2: 68-64-32-32-16-16-1 (8,208 weights).

The metric is the test mean squared error (lower is better).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prunegym.tasks.base import Task
from prunegym.tasks.checkpoints import load_checkpoint, load_state_into, save_checkpoint
from prunegym.tasks.data.diffusion_sorption import D_REF, K_REF, T_END, generate
from prunegym.tasks.fitting import finetune

ARCHITECTURES = {1: (68, 32, 32, 32, 1), 2: (68, 64, 32, 32, 16, 16, 1)}
NOISE_LEVELS = (0.0, 0.005, 0.01)
TRAIN_SAMPLES = 80


def build_regressor(architecture: int) -> nn.Sequential:
    sizes = ARCHITECTURES[architecture]
    layers: list[nn.Module] = []
    for width_in, width_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(width_in, width_out), nn.Tanh()]
    return nn.Sequential(*layers[:-1])


@cache
def _rows(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs (S·T·X, 68), targets (S·T·X, 1))`` of the clean data set, sample-major."""
    data = generate(seed=seed)
    samples, times, cells = data.u.shape
    mu = np.log2(data.mu / np.array([D_REF, K_REF]))
    s, t, x = np.meshgrid(np.arange(samples), np.arange(times), np.arange(cells), indexing="ij")
    s, t, x = s.ravel(), t.ravel(), x.ravel()
    inputs = np.concatenate(
        [mu[s], (data.times[t] / T_END)[:, None], data.x[x][:, None], data.u0[s]], axis=1
    )
    return torch.tensor(inputs, dtype=torch.float32), torch.tensor(data.u.reshape(-1, 1),
                                                                   dtype=torch.float32)  # fmt: skip


def load_split(noise: float, seed: int = 0):
    """``(train_x, train_y, test_x, test_y)`` with ``U(−noise, noise)`` added to the targets."""
    if noise not in NOISE_LEVELS:
        raise ValueError(f"noise must be one of {NOISE_LEVELS}, got {noise!r}")
    inputs, targets = _rows(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    noisy = targets + (torch.rand(targets.shape, generator=generator) * 2 - 1) * noise
    cut = TRAIN_SAMPLES * len(inputs) // 100
    return inputs[:cut], noisy[:cut], inputs[cut:], noisy[cut:]


def mse(model: nn.Module, batch) -> torch.Tensor:
    inputs, targets = batch
    return nn.functional.mse_loss(model(inputs), targets)


def regression_batches(inputs, targets, batch_size: int, seed: int, epoch: int):
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(len(inputs), generator=generator)
    return [(inputs[i], targets[i]) for i in order.split(batch_size)]


def train_regressor(architecture: int, noise: float, seed: int = 0, epochs: int = 30):
    """A seeded network trained with Adam (lr 1e-3, batch 256) for ``epochs``."""

    train_x, train_y, _, _ = load_split(noise)
    torch.manual_seed(seed)
    model = build_regressor(architecture)
    finetune(model, {}, epochs, lambda e: regression_batches(train_x, train_y, 256, seed, e), mse)
    return model.eval()


def shipped_checkpoint(architecture: int, noise: float) -> Path:
    name = f"diffusion_sorption_a{architecture}_n{noise:g}.pt"
    return Path(str(resources.files("prunegym.assets") / name))


def save_regressor(path, model: nn.Module, architecture: int, noise: float, seed: int, epochs):
    """Write a checkpoint with the test MSE in its metrics."""
    _, _, test_x, test_y = load_split(noise)
    with torch.no_grad():
        metrics = {"mse": float(mse(model, (test_x, test_y)))}
    config = {"architecture": architecture, "noise": noise, "seed": seed, "epochs": epochs}
    return save_checkpoint(path, model, config, metrics)


def calibration_rows(inputs, targets, rows: int = 8192, batch: int = 1024):
    """``rows`` random rows (seed 0) as ``(inputs, targets)`` batches of ``batch``."""
    generator = torch.Generator().manual_seed(0)  # the same rows on every device
    pick = torch.randperm(len(inputs), generator=generator, device="cpu")[:rows].to(inputs.device)
    return list(zip(inputs[pick].split(batch), targets[pick].split(batch), strict=True))


class DiffusionSorptionTask(Task):
    """Regress the diffusion–sorption solution with the paper's MLP.

    Args:
        architecture: 1 or 2 (Table 2).
        noise: Target noise half-width: 0, 0.005 or 0.01.
        checkpoint: A checkpoint to load instead of the shipped one (seed 0, 30 epochs of
            Adam, written by ``train_regressor`` and ``save_regressor``).
    """

    name = "diffusion-sorption"
    metric = "mse"
    higher_is_better = False
    metric_scale = 1e-3

    def __init__(self, architecture: int = 1, noise: float = 0.0, checkpoint=None):
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be 1 or 2, got {architecture!r}")
        self.architecture, self.noise, self.checkpoint = architecture, noise, checkpoint
        self.train_x, self.train_y, self.test_x, self.test_y = load_split(noise)

    def build_model(self) -> nn.Module:
        path = self.checkpoint or shipped_checkpoint(self.architecture, self.noise)
        model = build_regressor(self.architecture)
        load_state_into(model, load_checkpoint(path)["state_dict"], str(path))
        return model.eval()

    def components(self, model: nn.Module) -> dict[str, nn.Module]:
        return {"mlp": model}

    @property
    def example_inputs(self) -> torch.Tensor:
        return self.test_x[:2]

    def calibration_batches(self):
        """8,192 training rows drawn at random (seed 0) from all 80 training samples: rows come
        sample by sample, so the first rows would all share one ``μ`` and ``u₀``."""
        return calibration_rows(self.train_x, self.train_y)

    def forward(self, model: nn.Module, batch) -> torch.Tensor:
        return model(batch[0])

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        return mse(model, batch)

    def training_batches(self, epoch: int, seed: int = 0):
        return regression_batches(self.train_x, self.train_y, 256, seed, epoch)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return self.metrics_of_outputs(self.forward(model, self.evaluation_batch))

    @property
    def evaluation_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The test rows and targets."""
        return self.test_x, self.test_y

    def metrics_of_outputs(self, outputs: torch.Tensor) -> dict[str, float]:
        return {"mse": float(nn.functional.mse_loss(outputs, self.test_y))}

    def options(self) -> dict[str, object]:
        options: dict[str, object] = {"architecture": self.architecture, "noise": self.noise}
        if self.checkpoint is not None:
            options["checkpoint"] = str(self.checkpoint)
        return options
