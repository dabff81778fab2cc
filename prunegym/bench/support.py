"""Which torchvision architectures prunegym supports: one check per architecture.

:func:`check_architecture` builds the image-classification task on random weights and fake
images, then checks the pruning groups, ``step(c = 0.3)``, that ``reset`` restores the dense
weights bit for bit, and that the exported (physically smaller) model computes what the masked
one does. ``tests/test_support.py`` runs it over the architectures in :data:`ARCHITECTURES`;
``python benchmarks/support_table.py`` prints the README's table from the same checks.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch
from torch import nn

from prunegym.envs.prune_env import PruneEnv
from prunegym.pruning.channel.groups import UnsupportedLayerError
from prunegym.tasks import make_task

#: ``(architecture, expected)``: ``"ok"``, or the start of the UnsupportedLayerError message.
ARCHITECTURES = [
    ("resnet18", "ok"), ("resnet34", "ok"), ("resnet50", "ok"), ("wide_resnet50_2", "ok"),
    ("resnext50_32x4d", "layer 'layer1.0.conv2' is a grouped convolution"),
    ("mobilenet_v2", "ok"), ("mobilenet_v3_small", "ok"), ("mobilenet_v3_large", "ok"),
    ("efficientnet_b0", "ok"), ("efficientnet_v2_s", "ok"),
    ("regnet_x_400mf", "layer 'trunk_output.block4.block4-11.f.b.0' is a grouped convolution"),
    ("regnet_y_400mf", "layer 'trunk_output.block4.block4-5.f.b.0' is a grouped convolution"),
    ("convnext_tiny", "ok"),
    ("densenet121", "ok"), ("vgg11_bn", "ok"), ("vgg16", "ok"), ("squeezenet1_0", "ok"),
    ("mnasnet0_5", "ok"), ("googlenet", "ok"), ("alexnet", "ok"), ("vit_b_16", "ok"),
    ("shufflenet_v2_x0_5", "Torch-Pruning cannot trace this model's channel dependencies"),
]  # fmt: skip


def _without_zero_layers(model: nn.Module) -> nn.Module:
    """``model`` with every all-zero weight matrix (a ViT's classifier starts at zero) drawn
    at random, so that comparing outputs means something."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            weight = getattr(module, "weight", None)
            if isinstance(weight, nn.Parameter) and weight.dim() >= 2 and not weight.any():
                weight.copy_(0.02 * torch.randn(weight.shape, generator=generator))
    return model


def check_architecture(name: str, image_size: int = 64, images: int = 8) -> dict:
    """One architecture's row: ``groups``, ``parameters``, ``exported`` (parameters after
    pruning every group by 0.3), ``export_error`` (largest output difference from the masked
    model over its largest output), ``reset_exact``, ``sparsity``, ``seconds``; or ``error``
    (the ``UnsupportedLayerError`` message)."""
    started = time.perf_counter()
    task = make_task(
        "image-classification", model=name, image_size=image_size, eval_images=images,
        calibration_images=images, batch_size=images,
    )  # fmt: skip
    task.model = _without_zero_layers(task.build_model())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            env = PruneEnv(task)
    except UnsupportedLayerError as error:
        return {"architecture": name, "error": str(error)}
    dense = {key: value.clone() for key, value in env.model.state_dict().items()}
    coefficients = np.full(len(env.groups), 0.3)
    info = env.step(coefficients)[4]
    inputs = task.evaluation_batch[0]
    with torch.no_grad():
        expected = env.model(inputs)
        exported = env.export(coefficients)
        difference = (exported(inputs) - expected).abs().max() / expected.abs().max()
    env.reset()
    return {
        "architecture": name,
        "groups": len(env.groups),
        "parameters": sum(p.numel() for p in env.model.parameters()),
        "exported": sum(p.numel() for p in exported.parameters()),
        "export_error": float(difference),
        "reset_exact": all(torch.equal(v, dense[k]) for k, v in env.model.state_dict().items()),
        "sparsity": float(info["sparsity"]),
        "seconds": time.perf_counter() - started,
    }
