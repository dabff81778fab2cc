"""Image-classification data from a local folder (never downloaded), or seeded fake images.

Every source gives a pool of ``(image, label)`` pairs; :func:`load_image_split` draws the
evaluation and calibration sets from it as fixed, seeded, disjoint subsets and returns them as
normalised float32 tensors ``(N, 3, H, W)`` with int64 labels ``(N,)``.

- ``cifar10`` / ``cifar100``: torchvision's layout under ``data_root``
  (``cifar-10-batches-py/test_batch`` and ``data_batch_1..5``; ``cifar-100-python/test`` and
  ``train``), read directly (pickle files of uint8 rows), test split first.
- ``imagefolder``: ``data_root/<class>/<image>`` (ImageNet-val style), resized to 256 and
  centre-cropped to ``image_size`` (default 224).
- ``fake``: torchvision's ``FakeData`` (seeded random images), ``image_size`` (default 64).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets, transforms

SOURCES = ("fake", "cifar10", "cifar100", "imagefolder")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR = {
    "cifar10": ("cifar-10-batches-py", ["test_batch"], [f"data_batch_{i}" for i in range(1, 6)],
                b"labels", 10),
    "cifar100": ("cifar-100-python", ["test"], ["train"], b"fine_labels", 100),
}  # fmt: skip


@dataclass(frozen=True)
class ImageSplit:
    """Evaluation and calibration images ``(N, 3, H, W)`` float32 (normalised) and labels."""

    eval_images: torch.Tensor
    eval_labels: torch.Tensor
    calibration_images: torch.Tensor
    calibration_labels: torch.Tensor
    num_classes: int


def load_image_split(
    data: str,
    data_root: str | Path | None,
    eval_images: int,
    calibration_images: int,
    image_size: int | None = None,
    num_classes: int | None = None,
    seed: int = 0,
) -> ImageSplit:
    """The seeded, disjoint evaluation and calibration subsets of ``data`` (see the module
    docstring).

    Raises:
        ValueError: an unknown source, too few images, or a missing ``data_root``.
        FileNotFoundError: a data folder without the expected layout (the message names it).
    """
    if data not in SOURCES:
        raise ValueError(f"data must be one of {', '.join(SOURCES)}, got {data!r}")
    if eval_images < 1 or calibration_images < 1:
        raise ValueError("eval_images and calibration_images must be >= 1")
    wanted = eval_images + calibration_images
    if data == "fake":
        images, labels, classes = _fake(wanted, image_size or 64, num_classes or 10, seed)
    else:
        if data_root is None:
            raise ValueError(f"data={data!r} reads a local folder: give data_root")
        root = Path(data_root).expanduser()
        if data in CIFAR:
            images, labels, classes = _cifar(data, root, wanted)
        else:
            images, labels, classes = _imagefolder(root, image_size or 224)
    if len(images) < wanted:
        raise ValueError(
            f"{data} has {len(images)} images, fewer than eval_images + calibration_images = "
            f"{wanted}"
        )
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    pick_eval, pick_calibration = order[:eval_images], order[eval_images:wanted]
    return ImageSplit(
        _load(images, pick_eval), labels[pick_eval],
        _load(images, pick_calibration), labels[pick_calibration], classes,
    )  # fmt: skip


def _load(images, pick: torch.Tensor) -> torch.Tensor:
    if isinstance(images, torch.Tensor):
        return images[pick]
    return torch.stack([images[int(i)] for i in pick])  # a lazy dataset: load what is picked


def _fake(count: int, size: int, classes: int, seed: int):
    normalise = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )
    dataset = datasets.FakeData(count, (3, size, size), classes, normalise, random_offset=seed)
    images = torch.stack([dataset[i][0] for i in range(count)])
    labels = torch.tensor([int(dataset[i][1]) for i in range(count)], dtype=torch.long)
    return images, labels, classes


def _cifar(data: str, root: Path, wanted: int):
    folder, test, train, key, classes = CIFAR[data]
    rows, labels = [], []
    for name in test + train:  # the test split first; the training split if more are wanted
        path = root / folder / name
        if not path.is_file():
            raise FileNotFoundError(
                f"no {data} file {path} (expected torchvision's layout: {root}/{folder}/"
                f"{', '.join(test + train)}); nothing is downloaded"
            )
        try:
            with open(path, "rb") as file:
                batch = pickle.load(file, encoding="bytes")
            rows.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch[key], dtype=np.int64))
        except (pickle.UnpicklingError, KeyError, ValueError, EOFError) as error:
            raise FileNotFoundError(f"{path} is not a {data} batch file: {error!r}") from None
        if sum(len(part) for part in labels) >= wanted:
            break
    pixels = torch.from_numpy(np.concatenate(rows)).float() / 255.0
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std, torch.from_numpy(np.concatenate(labels)), classes


class _Images:
    """An ImageFolder's images, loaded and transformed when indexed."""

    def __init__(self, folder: datasets.ImageFolder) -> None:
        self.folder = folder

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.folder[index][0]


def _imagefolder(root: Path, size: int):
    transform = transforms.Compose([
        transforms.Resize(max(size, round(size * 256 / 224))), transforms.CenterCrop(size),
        transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])  # fmt: skip
    try:
        folder = datasets.ImageFolder(str(root), transform=transform)
    except (FileNotFoundError, OSError) as error:
        raise FileNotFoundError(
            f"no images under {root} (expected an image folder: {root}/<class>/<image>.jpg, "
            f"ImageNet-val style): {error}"
        ) from None
    labels = torch.tensor(folder.targets, dtype=torch.long)
    return _Images(folder), labels, len(folder.classes)
