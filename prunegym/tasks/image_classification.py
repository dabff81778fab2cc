"""Image classification with any torchvision classifier (or your own module), scored by top-1.

## Description
The model is a torchvision classification model by name (``model="resnet18"``), a user's
``nn.Module`` or a factory returning one. Its weights come from a local file (a torchvision
state dict, or a checkpoint holding a ``state_dict``, read with ``weights_only=True``), or are
random (``weights=None``, allowed only with ``data="fake"``: for speed work, the metric is
meaningless). The data are read locally, never downloaded (:mod:`prunegym.tasks.data.images`):
``cifar10``/``cifar100`` in torchvision's layout, an ``imagefolder`` (ImageNet-val style) or
seeded ``fake`` images. The evaluation and calibration sets are fixed, seeded, disjoint subsets
of ``eval_images`` and ``calibration_images`` images.

## Metric
``top1`` (fraction correct, higher is better), ``top5`` and ``loss`` (mean cross-entropy,
nats) on the evaluation images, from one forward over all of them.

## Components
The model's top-level children that hold parameters (``conv1``, ``bn1``, ``layer1`` … ``fc``
for a ResNet; ``features`` is split into its children, the stages of MobileNet, EfficientNet
and the like; a vision transformer's ``encoder`` into its blocks and final norm). Pass
``components={"name": "module.path"}`` to choose others.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch import nn

from prunegym.tasks.base import Task
from prunegym.tasks.checkpoints import CheckpointError, load_state_into, safe_load
from prunegym.tasks.data.images import load_image_split
from prunegym.tasks.options import check_at_least

#: Modules whose children are the components (the stages of ``features``, a ViT's blocks).
SPLIT = ("features", "encoder", "encoder.layers")


def top_k_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """``top1``, ``top5`` (fractions) and ``loss`` (mean cross-entropy) of ``(N, C)`` logits."""
    k = min(5, logits.shape[1])
    best = logits.topk(k, dim=1).indices
    hits = best == labels[:, None]
    return {
        "top1": float(hits[:, 0].float().mean()),
        "top5": float(hits.any(dim=1).float().mean()),
        "loss": float(nn.functional.cross_entropy(logits, labels)),
    }


class ImageClassificationTask(Task):
    """Prune an image classifier (see the module docstring).

    Args:
        model: A torchvision model name (``torchvision.models.list_models()``), an
            ``nn.Module`` (copied, never modified) or a factory returning one.
        weights: A local weights file; ``None``: random weights (``data="fake"`` only).
        data: ``fake``, ``cifar10``, ``cifar100`` or ``imagefolder``.
        data_root: The local data folder (not for ``fake``).
        eval_images: Evaluation images (one forward over all of them: keep it to what fits).
        calibration_images: Calibration images, disjoint from the evaluation ones.
        image_size: Side in pixels for ``fake`` (default 64) and ``imagefolder`` (224).
        num_classes: Classes of a model built by name (default: the data's).
        batch_size: Calibration batch size.
        seed: Seed of the subsets, the fake images and random weights.
        components: Component name to module path, instead of the default.
    """

    name = "image-classification"
    metric = "top1"
    higher_is_better = True
    metric_scale = 0.1  # the reward moves by 1 per 10 points of top-1
    output_kind = "logits"

    def __init__(
        self,
        model: str | nn.Module | Callable[[], nn.Module] = "resnet18",
        weights: str | Path | None = None,
        data: str = "fake",
        data_root: str | Path | None = None,
        eval_images: int = 256,
        calibration_images: int = 128,
        image_size: int | None = None,
        num_classes: int | None = None,
        batch_size: int = 64,
        seed: int = 0,
        components: dict[str, str] | None = None,
    ) -> None:
        if weights is None and data != "fake":
            raise ValueError(
                f"weights=None gives random weights, allowed only with data='fake' (got "
                f"data={data!r}); give weights= a local weights file"
            )
        if isinstance(model, str) and model not in torchvision.models.list_models(
            module=torchvision.models
        ):
            raise ValueError(
                f"unknown torchvision classification model {model!r}; see "
                "torchvision.models.list_models(module=torchvision.models)"
            )
        self.model, self.weights, self.data, self.data_root = model, weights, data, data_root
        check_at_least(
            "task 'image-classification'", 1, eval_images=eval_images,
            calibration_images=calibration_images, batch_size=batch_size,
        )  # fmt: skip
        self.eval_count, self.calibration_count = eval_images, calibration_images
        self.image_size, self.batch_size, self.seed = image_size, batch_size, seed
        self.component_paths = components
        self.split = load_image_split(
            data, data_root, eval_images, calibration_images, image_size, num_classes, seed
        )
        self.num_classes = num_classes or self.split.num_classes

    def build_model(self) -> nn.Module:
        if isinstance(self.model, nn.Module):
            model = copy.deepcopy(self.model)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                if callable(self.model):
                    model = self.model()
                else:
                    model = torchvision.models.get_model(
                        self.model, weights=None, num_classes=self.num_classes, **self._sized()
                    )
        if self.weights is not None:
            state = safe_load(self.weights, "weights file")
            if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
                state = state["state_dict"]
            if not isinstance(state, dict):
                raise CheckpointError(f"{self.weights} holds no state dict")
            load_state_into(model, state, self.weights)
        return model.eval()

    def _sized(self) -> dict[str, int]:
        """``image_size=`` for a vision transformer by name: its position embedding is made for
        one image side (torchvision's default 224)."""
        side = int(self.split.eval_images.shape[-1])
        return {"image_size": side} if self.model.startswith("vit_") and side != 224 else {}

    def components(self, model: nn.Module) -> dict[str, nn.Module]:
        if self.component_paths is not None:
            return {name: model.get_submodule(path) for name, path in self.component_paths.items()}
        found = {}

        def gather(prefix: str, module: nn.Module) -> None:
            for name, child in module.named_children():
                path = f"{prefix}{name}"
                if not any(True for _ in child.parameters()):
                    continue
                if path in SPLIT:
                    gather(f"{path}.", child)
                else:
                    found[path] = child

        gather("", model)
        return found

    @property
    def example_inputs(self) -> torch.Tensor:
        return self.split.eval_images[:2]

    def calibration_batches(self):
        images, labels = self.split.calibration_images, self.split.calibration_labels
        return list(zip(images.split(self.batch_size), labels.split(self.batch_size), strict=True))

    def forward(self, model: nn.Module, batch) -> torch.Tensor:
        return model(batch[0])

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        return nn.functional.cross_entropy(model(batch[0]), batch[1])

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return self.metrics_of_outputs(self.forward(model, self.evaluation_batch))

    @property
    def evaluation_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The evaluation images ``(N, 3, H, W)`` and labels ``(N,)``."""
        return self.split.eval_images, self.split.eval_labels

    def metrics_of_outputs(self, outputs: torch.Tensor) -> dict[str, float]:
        return top_k_metrics(outputs, self.split.eval_labels)

    def options(self) -> dict[str, object]:
        options: dict[str, object] = {
            "data": self.data, "eval_images": self.eval_count,
            "calibration_images": self.calibration_count, "num_classes": self.num_classes,
            "batch_size": self.batch_size, "seed": self.seed,
        }  # fmt: skip
        if isinstance(self.model, str):
            options["model"] = self.model
        for key in ("weights", "data_root", "image_size"):
            if getattr(self, key) is not None:
                value = getattr(self, key)
                options[key] = value if isinstance(value, int) else str(value)
        if self.component_paths is not None:
            options["components"] = dict(self.component_paths)
        return options
