"""A zoo of small trained networks, one per seed: pruning problems for training and validating
policies that must serve networks they never saw (``make_task("zoo", seed=S)``).

Each seed draws an architecture and trains it in a second or two on the CPU, on the embedded
MNIST digits (784 pixels in [0, 1]; a convnet's downsampled to 14×14); nothing is downloaded
or shipped.
Seeds cycle through three kinds (``seed % 3``):

- ``classifier``: an MLP ``784 → h₁ → … → h_k → 10``, k in 2..4;
- ``autoencoder``: ``784 → h₁ [→ h₂] → b`` then the mirror back to 784, sigmoid output; the
  encoder and decoder are two components, so the bottleneck is a coupling group;
- ``convnet``: ``Conv(1→c₁, 3×3) act MaxPool → Conv(c₁→c₂, 3×3) act MaxPool → Linear(9·c₂→h)
  act → Linear(h→10)``.

The widths, the activation (ReLU, tanh, GELU or leaky ReLU; no tanh in an autoencoder, where
it stalls at the mean digit) and the training epochs (2 to 8 of Adam, lr 3e-3, batch 128, on
the 4,000 training digits; an autoencoder three times as many at lr 1e-2) are drawn from the
seed too. The metric is ``loss`` on the first 500 of the 1,000 test digits (lower is better):
the cross-entropy (nats) of a classifier, the mean squared pixel error of an autoencoder.
Classifiers report ``accuracy`` too. Trained weights differ in their last bits from CPU to
CPU, as any training does.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from prunegym.tasks.base import Task
from prunegym.tasks.data.mnist import load_mnist_split
from prunegym.tasks.fitting import finetune
from prunegym.tasks.mnist_classifier import classifier_batches, logits_metrics
from prunegym.tasks.options import check_at_least, is_count

KINDS = ("classifier", "autoencoder", "convnet")
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "leaky-relu": nn.LeakyReLU}
WIDTHS = (32, 48, 64, 96, 128)
SIDE = 14  # a convnet's pixels per side, after 2×2 average pooling
EVALUATION_DIGITS = 500  # the first of the 1,000 test digits: the metric's data


def zoo_architecture(seed: int) -> dict:
    """What seed ``seed`` builds: ``kind``, ``activation``, ``widths`` (hidden layers in order;
    a convnet's are ``[c₁, c₂, h]``), ``epochs``. Drawn from the seed alone."""
    rng = np.random.default_rng([seed, 2026])
    kind = KINDS[seed % len(KINDS)]
    saturating = ("tanh",) if kind == "autoencoder" else ()  # deep tanh autoencoders stall
    activation = str(rng.choice([name for name in ACTIVATIONS if name not in saturating]))
    if kind == "classifier":
        widths = rng.choice(WIDTHS, size=int(rng.integers(2, 5)))
    elif kind == "autoencoder":
        encoder = sorted(rng.choice(WIDTHS[2:], size=int(rng.integers(1, 3))), reverse=True)
        widths = [*encoder, int(rng.choice((12, 16, 24))), *encoder[::-1]]
    else:
        widths = [*rng.choice((8, 12, 16, 24), size=2), rng.choice(WIDTHS)]
    widths = [int(w) for w in widths]
    return {"kind": kind, "activation": activation, "widths": widths,
            "epochs": int(rng.integers(2, 9))}  # fmt: skip


def build_zoo_model(architecture: dict) -> nn.Sequential:
    """The untrained network of ``architecture`` (:func:`zoo_architecture`); its submodules are
    its components (``mlp``; ``encoder``/``decoder``; ``features``/``head``)."""
    act, widths = ACTIVATIONS[architecture["activation"]], architecture["widths"]

    def mlp(sizes: list[int], last: nn.Module | None = None) -> nn.Sequential:
        """Linear layers with ``act`` between them, and ``last`` (if any) after the final one."""
        layers = [
            m for pair in zip(sizes, sizes[1:], strict=False) for m in (nn.Linear(*pair), act())
        ]
        return nn.Sequential(*layers[:-1], *([last] if last is not None else []))

    model = nn.Sequential()
    if architecture["kind"] == "classifier":
        model.mlp = mlp([784, *widths, 10])
    elif architecture["kind"] == "autoencoder":
        middle = len(widths) // 2
        model.encoder = mlp([784, *widths[: middle + 1]], last=act())
        model.decoder = mlp([*widths[middle:], 784], last=nn.Sigmoid())
    else:
        first, second, hidden = widths
        model.features = nn.Sequential(
            nn.Conv2d(1, first, 3, padding=1), act(), nn.MaxPool2d(2),
            nn.Conv2d(first, second, 3, padding=1), act(), nn.MaxPool2d(2),
        )  # fmt: skip
        model.head = nn.Sequential(nn.Flatten(), *mlp([second * 9, hidden, 10]))
    return model


class ZooTask(Task):
    """One network of the zoo (see the module docstring), trained when the task is built.

    Args:
        seed: Which network: its architecture, initialisation and data order.
        calibration_size: Training digits used for importance statistics.
    """

    name = "zoo"
    metric = "loss"
    higher_is_better = False

    def __init__(self, seed: int = 0, calibration_size: int = 500) -> None:
        if not is_count(seed, 0):
            raise ValueError(f"task 'zoo' option seed must be an integer >= 0, got {seed!r}")
        check_at_least("task 'zoo'", 1, calibration_size=calibration_size)
        self.seed, self.calibration_size = int(seed), int(calibration_size)
        self.architecture = zoo_architecture(self.seed)
        split, test = load_mnist_split(None), slice(0, EVALUATION_DIGITS)
        pixels = _downsample if self.architecture["kind"] == "convnet" else (lambda x: x)
        self.train_images, self.train_labels = pixels(split.train_images), split.train_labels
        self.test_images, self.test_labels = (
            pixels(split.test_images[test]),
            split.test_labels[test],
        )
        self.reconstructs = self.architecture["kind"] == "autoencoder"
        # what the network learns to output: the digit itself, or its label
        self.train_targets = self.train_images if self.reconstructs else self.train_labels
        # a useless model's loss is about this far from the dense one's: the mean digit's
        self.metric_scale = float(self.test_images.var(0).mean()) if self.reconstructs else 1.0
        self.output_kind = "values" if self.reconstructs else "logits"
        self._model = self._train()

    def _train(self) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = build_zoo_model(self.architecture)

            def batches(epoch: int):
                return classifier_batches(
                    self.train_images, self.train_targets, 128, self.seed, epoch
                )

            epochs = self.architecture["epochs"] * (3 if self.reconstructs else 1)
            finetune(model, {}, epochs, batches, self.loss, 1e-2 if self.reconstructs else 3e-3)
        return model.eval()

    def build_model(self) -> nn.Module:
        return self._model

    def components(self, model: nn.Module) -> dict[str, nn.Module]:
        return dict(model.named_children())

    @property
    def example_inputs(self) -> torch.Tensor:
        return self._inputs(self.test_images[:2])

    def _inputs(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.architecture["kind"] == "convnet":
            return pixels.reshape(-1, 1, SIDE, SIDE)
        return pixels

    def calibration_batches(self):
        images, targets = (
            x[: self.calibration_size] for x in (self.train_images, self.train_targets)
        )
        return list(zip(images.split(250), targets.split(250), strict=True))

    def forward(self, model: nn.Module, batch) -> torch.Tensor:
        return model(self._inputs(batch[0]))

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        outputs = self.forward(model, batch)
        if self.reconstructs:
            return nn.functional.mse_loss(outputs, batch[1])
        return nn.functional.cross_entropy(outputs, batch[1])

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return self.metrics_of_outputs(self.forward(model, self.evaluation_batch))

    @property
    def evaluation_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The evaluation digits ``(500, 784)`` (a convnet's ``(500, 196)``) and labels."""
        return self.test_images, self.test_labels

    def metrics_of_outputs(self, outputs: torch.Tensor) -> dict[str, float]:
        if self.reconstructs:
            return {"loss": float((outputs - self.test_images).pow(2).mean())}
        return logits_metrics(outputs, self.test_labels)

    def options(self) -> dict[str, object]:
        return {"seed": self.seed, "calibration_size": self.calibration_size}

    def describe(self) -> dict[str, object]:
        return {**super().describe(), **self.architecture}


def _downsample(pixels: torch.Tensor) -> torch.Tensor:
    """``(N, 784)`` digits → ``(N, 196)``: 2×2 average pooling."""
    images = pixels.reshape(-1, 1, 28, 28)
    return nn.functional.avg_pool2d(images, 2).reshape(len(pixels), SIDE * SIDE)
