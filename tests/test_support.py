"""The support list: torchvision architectures on random weights and fake 64-px images. Each
supported one gets its groups, a step at c = 0.3, a bit-exact reset and an export that computes
what the masked model does; each unsupported one fails with UnsupportedLayerError naming why."""

from __future__ import annotations

import pytest

from prunegym.bench.support import ARCHITECTURES, check_architecture


@pytest.mark.parametrize(("name", "expected"), ARCHITECTURES)
def test_architecture(name, expected):
    row = check_architecture(name)
    if expected != "ok":
        assert row.get("error", "").startswith(expected), row
        return
    assert "error" not in row, row
    assert row["groups"] >= 5 and row["reset_exact"]
    assert row["export_error"] < 1e-4
    assert row["exported"] < 0.8 * row["parameters"]
    assert 0.2 < row["sparsity"] < 0.7


def test_the_support_list_covers_at_least_twenty_architectures():
    assert len(ARCHITECTURES) >= 20
    families = ("resnet", "wide_resnet", "resnext", "mobilenet_v2", "mobilenet_v3",
                "efficientnet", "regnet", "convnext", "densenet", "vgg")  # fmt: skip
    assert all(any(name.startswith(f) for name, _ in ARCHITECTURES) for f in families)
