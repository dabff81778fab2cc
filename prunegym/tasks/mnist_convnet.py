"""A small CNN with BatchNorm on MNIST, for network slimming (the CNN-pruning review's case).

``Conv(1→16, 3×3) BN ReLU MaxPool → Conv(16→32, 3×3) BN ReLU MaxPool → Linear(1568→10)``,
20,586 parameters. The shipped checkpoint: seed 0, 8 epochs of Adam (lr 1e-3, batch 64) on
the 4,000 embedded training digits. The metric is the accuracy on the 1,000 test digits
(higher is better); the test cross-entropy is reported too.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
from torch import nn

from prunegym.tasks.base import Task
from prunegym.tasks.checkpoints import load_checkpoint, load_state_into, save_checkpoint
from prunegym.tasks.data.mnist import load_mnist_split
from prunegym.tasks.fitting import finetune
from prunegym.tasks.mnist_classifier import classifier_batches, classifier_metrics, logits_metrics

EPOCHS = 8


def build_convnet() -> nn.Sequential:
    model = nn.Sequential()
    model.features = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
    )  # fmt: skip
    model.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
    return model


def images(flat: torch.Tensor) -> torch.Tensor:
    """``(N, 784)`` → ``(N, 1, 28, 28)``."""
    return flat.reshape(-1, 1, 28, 28)


def cross_entropy(model: nn.Module, batch) -> torch.Tensor:
    pixels, labels = batch
    return nn.functional.cross_entropy(model(images(pixels)), labels)


def train_convnet(seed: int = 0, epochs: int = EPOCHS, data_root=None) -> nn.Module:
    """A seeded convnet trained with Adam (lr 1e-3, batch 64)."""

    split = load_mnist_split(data_root)
    torch.manual_seed(seed)
    model = build_convnet()

    def batches(epoch):
        return classifier_batches(split.train_images, split.train_labels, 64, seed, epoch)

    finetune(model, {}, epochs, batches, cross_entropy)
    return model.eval()


def shipped_checkpoint() -> Path:
    return Path(str(resources.files("prunegym.assets") / "mnist_convnet.pt"))


class MNISTConvNetTask(Task):
    """Classify MNIST digits with a small BatchNorm CNN.

    Args:
        checkpoint: A checkpoint to load instead of the shipped one (e.g. after slimming).
        data_root: Full MNIST in torchvision's layout; ``None`` uses the embedded digits.
    """

    name = "mnist-convnet"
    metric = "accuracy"
    higher_is_better = True
    output_kind = "logits"
    metric_scale = 0.1

    def __init__(self, checkpoint=None, data_root=None) -> None:
        self.checkpoint, self.data_root = checkpoint, data_root
        self.split = load_mnist_split(data_root)

    def build_model(self) -> nn.Module:
        path = self.checkpoint or shipped_checkpoint()
        model = build_convnet()
        load_state_into(model, load_checkpoint(path)["state_dict"], str(path))
        return model.eval()

    def components(self, model: nn.Module) -> dict[str, nn.Module]:
        return {"features": model.features, "head": model.head}

    @property
    def example_inputs(self) -> torch.Tensor:
        return images(self.split.test_images[:2])

    def calibration_batches(self):
        pixels, labels = self.split.train_images[:1000], self.split.train_labels[:1000]
        return list(zip(pixels.split(250), labels.split(250), strict=True))

    def forward(self, model: nn.Module, batch) -> torch.Tensor:
        return model(images(batch[0]))

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        return cross_entropy(model, batch)

    def training_batches(self, epoch: int, seed: int = 0):
        return classifier_batches(self.split.train_images, self.split.train_labels, 64, seed, epoch)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return self.metrics_of_outputs(self.forward(model, self.evaluation_batch))

    @property
    def evaluation_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The test digits ``(N, 784)`` and labels."""
        return self.split.test_images, self.split.test_labels

    def metrics_of_outputs(self, outputs: torch.Tensor) -> dict[str, float]:
        metrics = logits_metrics(outputs, self.split.test_labels)
        return {"accuracy": metrics["accuracy"], "loss": metrics["loss"]}

    def options(self) -> dict[str, object]:
        return {k: str(getattr(self, k)) for k in ("checkpoint", "data_root") if getattr(self, k)}


def save_convnet(path, model: nn.Module, config: dict, data_root=None) -> Path:
    split = load_mnist_split(data_root)
    metrics = classifier_metrics(model, images(split.test_images), split.test_labels)
    return save_checkpoint(path, model, config, metrics)
