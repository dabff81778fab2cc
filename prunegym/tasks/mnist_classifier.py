"""The elimination-compensation paper's MNIST classifiers: 784-h-h-10 MLPs with PReLU (Table 1).

Architecture 1 is ``hidden=32`` (26,432 weights), architecture 2 ``hidden=64`` (54,912). Both
are trained on the embedded 4,000-digit training split with Adam and cross-entropy for 15
epochs (the paper's first "train"); the shipped checkpoints use seed 0. The metric is the
cross-entropy on the 1,000 test digits (lower is better); accuracy is reported too.
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
from prunegym.tasks.options import check_at_least

ARCHITECTURES = {32: "784-32-32-10", 64: "784-64-64-10"}
RECIPE = {"epochs": 15, "batch_size": 64, "learning_rate": 1e-3}


def build_classifier(hidden: int) -> nn.Sequential:
    """``Linear(784, h) PReLU Linear(h, h) PReLU Linear(h, 10)`` (logits)."""
    return nn.Sequential(
        nn.Linear(784, hidden), nn.PReLU(), nn.Linear(hidden, hidden), nn.PReLU(),
        nn.Linear(hidden, 10),
    )  # fmt: skip


def classifier_batches(images, labels, batch_size: int, seed: int, epoch: int):
    """Shuffled ``(images, labels)`` batches of one epoch (seeded by ``seed`` and ``epoch``)."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(len(images), generator=generator)
    return [(images[i], labels[i]) for i in order.split(batch_size)]


def cross_entropy(model: nn.Module, batch) -> torch.Tensor:
    images, labels = batch
    return nn.functional.cross_entropy(model(images), labels)


@torch.no_grad()
def classifier_metrics(model: nn.Module, images, labels) -> dict[str, float]:
    """``loss`` (mean cross-entropy, nats) and ``accuracy`` (fraction) on the given digits."""
    return logits_metrics(model(images), labels)


def logits_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """``loss`` (mean cross-entropy, nats) and ``accuracy`` (fraction) of ``(N, classes)``
    logits."""
    return {
        "loss": float(nn.functional.cross_entropy(logits, labels)),
        "accuracy": float((logits.argmax(1) == labels).float().mean()),
    }


def train_classifier(hidden: int, seed: int = 0, epochs: int = 15, data_root=None) -> nn.Module:
    """A freshly initialised (``seed``) classifier trained with Adam (lr 1e-3, batch 64)."""

    split = load_mnist_split(data_root)
    torch.manual_seed(seed)
    model = build_classifier(hidden)

    def batches(epoch):
        return classifier_batches(split.train_images, split.train_labels, 64, seed, epoch)

    finetune(model, {}, epochs, batches, cross_entropy, RECIPE["learning_rate"])
    return model.eval()


def weight_count(hidden: int) -> int:
    """``|W|`` of 784-h-h-10 (biases and PReLU slopes excluded), as in Table 1."""
    return 784 * hidden + hidden * hidden + 10 * hidden


def fully_connected_width(hidden: int, ratio: float) -> int:
    """The paper's "fully-connected" reference for pruning ratio ``r``: the largest width
    ``h'`` with ``|W(h')| ≤ (1 − r)·|W(h)|``, so the narrower dense network has no more weights
    than the pruned one (at least 1)."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"pruning ratio must lie in [0, 1), got {ratio!r}")
    budget = (1 - ratio) * weight_count(hidden)
    width = int((-794 + (794**2 + 4 * budget) ** 0.5) / 2)
    return max(1, width + (weight_count(width + 1) <= budget))  # guard float rounding


def shipped_checkpoint(hidden: int) -> Path:
    return Path(str(resources.files("prunegym.assets") / f"mnist_classifier_{hidden}.pt"))


def save_classifier(path: str | Path, model: nn.Module, hidden: int, seed: int, data_root=None):
    split = load_mnist_split(data_root)
    metrics = classifier_metrics(model, split.test_images, split.test_labels)
    config = {"hidden": hidden, "seed": seed, **RECIPE}
    return save_checkpoint(path, model, config, metrics)


class MNISTClassifierTask(Task):
    """Classify MNIST digits with the paper's PReLU MLP (architecture 784-h-h-10).

    Args:
        hidden: 32 (architecture 1) or 64 (architecture 2).
        checkpoint: A checkpoint to load instead of the shipped one.
        data_root: Full MNIST in torchvision's layout; ``None`` uses the embedded digits.
        calibration_size: Training digits used for importance statistics.
    """

    name = "mnist-classifier"
    metric = "loss"
    higher_is_better = False
    output_kind = "logits"
    metric_scale = 1.0

    def __init__(
        self, hidden: int = 64, checkpoint=None, data_root=None, calibration_size: int = 1000
    ):
        if hidden not in ARCHITECTURES:
            raise ValueError(f"hidden must be one of {sorted(ARCHITECTURES)}, got {hidden!r}")
        self.hidden, self.checkpoint, self.data_root = hidden, checkpoint, data_root
        check_at_least("task 'mnist-classifier'", 1, calibration_size=calibration_size)
        self.calibration_size = calibration_size
        self.split = load_mnist_split(data_root)

    def build_model(self) -> nn.Module:
        path = self.checkpoint or shipped_checkpoint(self.hidden)
        payload = load_checkpoint(path)
        model = build_classifier(self.hidden)
        load_state_into(model, payload["state_dict"], str(path))
        return model.eval()

    def components(self, model: nn.Module) -> dict[str, nn.Module]:
        return {"mlp": model}

    @property
    def example_inputs(self) -> torch.Tensor:
        return self.split.test_images[:2]

    def calibration_batches(self):
        images = self.split.train_images[: self.calibration_size]
        labels = self.split.train_labels[: self.calibration_size]
        return list(zip(images.split(250), labels.split(250), strict=True))

    def forward(self, model: nn.Module, batch) -> torch.Tensor:
        return model(batch[0])

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        return cross_entropy(model, batch)

    def training_batches(self, epoch: int, seed: int = 0):
        """Shuffled training batches for fine-tuning (``prunegym.tasks.fitting.finetune``)."""
        return classifier_batches(self.split.train_images, self.split.train_labels, 64, seed, epoch)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return self.metrics_of_outputs(self.forward(model, self.evaluation_batch))

    @property
    def evaluation_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The test digits and labels."""
        return self.split.test_images, self.split.test_labels

    def metrics_of_outputs(self, outputs: torch.Tensor) -> dict[str, float]:
        return logits_metrics(outputs, self.split.test_labels)

    def options(self) -> dict[str, object]:
        options: dict[str, object] = {"hidden": self.hidden}
        for key in ("checkpoint", "data_root"):
            if getattr(self, key) is not None:
                options[key] = str(getattr(self, key))
        return options
