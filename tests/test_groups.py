import pytest
import torch
from torch import nn

from prunegym.pruning.channel.groups import (
    COMPONENT,
    COUPLING,
    UnsupportedLayerError,
    find_groups,
    format_group_table,
)
from prunegym.tasks.mnist_autoencoder import MNISTAutoencoder


def test_mnist_autoencoder_has_two_encoder_two_decoder_and_one_coupling_group():
    model = MNISTAutoencoder()
    groups = find_groups(
        model,
        {"encoder": model.encoder, "decoder": model.decoder},
        torch.rand(2, 784),
        [model.decoder[4]],
    )
    assert [(g.kind, g.components) for g in groups] == [
        (COMPONENT, ("encoder",)),
        (COMPONENT, ("encoder",)),
        (COMPONENT, ("decoder",)),
        (COMPONENT, ("decoder",)),
        (COUPLING, ("encoder", "decoder")),
    ]
    assert [g.channels for g in groups] == [512, 256, 256, 512, 128]
    # s_i: producer rows + bias + consumer columns, e.g. 784*512 + 512 + 512*256.
    assert groups[0].parameters == 784 * 512 + 512 + 512 * 256
    assert groups[4].parameters == 256 * 128 + 128 + 128 * 256
    assert groups[4].modules == ("encoder.4", "decoder.0")
    # The output layer's outputs are in no group; only its input columns are.
    sliced = {(s.param, s.dim) for g in groups for s in g.slices}
    assert ("decoder.4.weight", 0) not in sliced and ("decoder.4.bias", 0) not in sliced
    assert ("decoder.4.weight", 1) in sliced


def test_group_table_lists_every_group(toy_env):
    table = format_group_table(toy_env.groups, toy_env.pruner.total_parameters)
    assert table.count("Component-specific") == 4
    assert table.count("Coupling") == 1
    assert "encoder-decoder" in table
    assert f"{toy_env.pruner.total_parameters:,}" in table


def test_conv_batchnorm_residual_and_transposed_layers(conv_net):
    model, components, inputs = conv_net
    groups = find_groups(model, components, inputs)
    # The residual addition couples the stem conv, both BNs and the block conv into one group.
    residual = [g for g in groups if "encoder.0" in g.modules]
    assert len(residual) == 1
    assert {"encoder.0", "encoder.1", "block.0", "block.1", "decoder.0"} <= set(residual[0].modules)
    assert residual[0].kind == COUPLING
    slices = {(s.param, s.dim) for s in residual[0].slices}
    assert ("encoder.1.weight", 0) in slices and ("block.1.bias", 0) in slices
    assert ("decoder.0.weight", 0) in slices  # ConvTranspose input channels are dim 0
    transposed = [
        g for g in groups if ("decoder.0.weight", 1) in {(s.param, s.dim) for s in g.slices}
    ]
    assert len(transposed) == 1  # ConvTranspose output channels are dim 1
    assert all(
        "decoder.2" not in {s.param.rsplit(".", 1)[0] for s in g.slices if s.dim == 0}
        for g in groups
    )


def test_grouped_convolution_is_rejected_with_its_name():
    model = nn.Sequential(
        nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=2), nn.ReLU(), nn.Conv2d(8, 2, 1)
    )
    with pytest.raises(UnsupportedLayerError, match="'2'.*grouped"):
        find_groups(model, {"net": model}, torch.randn(1, 4, 8, 8))


def test_unknown_component_is_rejected():
    model = MNISTAutoencoder()
    with pytest.raises(ValueError, match="not a submodule"):
        find_groups(model, {"encoder": nn.Linear(2, 2)}, torch.rand(2, 784))
