"""Transformers: attention heads and MLP widths as groups, the residual stream as coupling, and
LayerNorms that leave masked channels out of their statistics, so that export equals the
masked model."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from prunegym.envs import check_task
from prunegym.envs.prune_env import PruneEnv
from prunegym.pruning.channel.attention import HeadAttention, explicit_attention
from prunegym.pruning.channel.groups import UnsupportedLayerError, find_groups
from prunegym.pruning.channel.layer_norm import (
    KeptLayerNorm,
    KeptLayerNorm2d,
    explicit_layer_norms,
)
from prunegym.pruning.channel.pruner import SoftPruner
from prunegym.tasks import make_task


def _vit() -> VisionTransformer:
    torch.manual_seed(0)
    model = VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=64,
        num_classes=10,
    )  # fmt: skip
    nn.init.normal_(model.heads.head.weight, std=0.1)  # torchvision starts it at zero
    return model.eval()


@pytest.mark.parametrize("batch_first", [True, False])
def test_head_attention_computes_what_multihead_attention_does(batch_first):
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
    explicit = HeadAttention.from_multihead(reference)
    x = torch.randn(3, 5, 16) if batch_first else torch.randn(5, 3, 16)
    padding = torch.zeros(3, 5, dtype=torch.bool)
    padding[0, -2:] = True
    causal = torch.ones(5, 5, dtype=torch.bool).triu(1)
    for kwargs in ({"need_weights": False}, {"key_padding_mask": padding, "attn_mask": causal}):
        expected, expected_weights = reference(x, x, x, **kwargs)
        got, weights = explicit(x, x, x, **kwargs)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        if expected_weights is not None:
            torch.testing.assert_close(weights, expected_weights, rtol=1e-5, atol=1e-6)


def test_a_raw_multihead_attention_in_a_group_asks_for_explicit_attention():
    model = _vit()
    with pytest.raises(UnsupportedLayerError, match="explicit_attention"):
        find_groups(model, {"all": model}, torch.randn(2, 3, 32, 32))
    blocked = nn.MultiheadAttention(8, 2, add_bias_kv=True)
    with pytest.raises(UnsupportedLayerError, match="add_bias_kv"):
        HeadAttention.from_multihead(blocked)


def test_vit_heads_mlp_widths_and_residual_stream_are_groups_and_export_is_smaller():
    task = make_task(
        "image-classification", model=_vit, image_size=32, eval_images=12,
        calibration_images=12, batch_size=12,
    )  # fmt: skip
    env = PruneEnv(task)
    kinds = [(g.kind, g.channels) for g in env.groups]
    assert kinds == [("component", 4), ("component", 64)] * 2 + [("coupling", 32)]
    assert [g.components for g in env.groups[:2]] == [("encoder.layers.encoder_layer_0",)] * 2
    dense = {key: value.clone() for key, value in env.model.state_dict().items()}
    inputs = task.evaluation_batch[0]
    with torch.no_grad():
        dense_logits = env.model(inputs)
    coefficients = np.array([0.5, 0.3, 0.25, 0.3, 0.3])
    env.step(coefficients)
    with torch.no_grad():
        masked = env.model(inputs)
        exported = env.export(coefficients)
        assert (masked - dense_logits).abs().max() > 1e-3  # the step changed the function
        torch.testing.assert_close(exported(inputs), masked, rtol=1e-4, atol=1e-5)
        exported(inputs[:3])  # another batch size
    heads = [m.num_heads for m in exported.modules() if isinstance(m, HeadAttention)]
    assert heads == [2, 3]
    blocks = exported.encoder.layers
    assert [b.num_heads for b in blocks] == [2, 3] and exported.hidden_dim == 32 - 10
    assert blocks[0].mlp[0].out_features == 64 - 19
    assert sum(p.numel() for p in exported.parameters()) < 0.7 * sum(
        p.numel() for p in env.model.parameters()
    )
    env.reset()
    assert all(torch.equal(value, dense[key]) for key, value in env.model.state_dict().items())
    with torch.no_grad():
        assert torch.equal(env.model(inputs), dense_logits)


@pytest.mark.parametrize("criterion", ["l1", "l2", "taylor", "random", "compensated"])
def test_every_criterion_ranks_heads(criterion):
    model = _vit()
    explicit_attention(model)
    inputs = torch.randn(4, 3, 32, 32)
    groups = find_groups(model, {"all": model}, inputs)
    heads = [g for g in groups if g.tp_group is None]
    assert len(heads) == 2
    pruner = SoftPruner(
        model, {"all": model}, inputs, lambda: [inputs], lambda m, x: m(x),
        loss=lambda m, x: m(x).pow(2).mean(), criterion=criterion,
    )  # fmt: skip
    orders = [pruner.orders[g.index] for g in pruner.groups if g.tp_group is None]
    assert all(sorted(order.tolist()) == [0, 1, 2, 3] for order in orders)
    if criterion == "l2":  # by the norm of each head's rows and columns
        attention = pruner.model.encoder.layers[0].self_attention
        norms = sum(
            layer.weight.reshape(4, -1).pow(2).sum(1) + layer.bias.reshape(4, -1).pow(2).sum(1)
            for layer in (attention.q, attention.k, attention.v)
        ) + attention.out.weight.reshape(-1, 4, 8).pow(2).sum((0, 2))
        assert orders[0].tolist() == torch.argsort(norms).tolist()


def test_masked_layer_norm_normalises_over_the_kept_channels_only():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 3))
    reference = copy.deepcopy(model)
    inputs = torch.randn(20, 6)
    pruner = SoftPruner(model, {"all": model}, inputs, lambda: [inputs], lambda m, x: m(x))
    assert isinstance(model[1], KeptLayerNorm)
    with torch.no_grad():
        assert torch.equal(model(inputs), reference(inputs))  # same function while dense
        pruner.apply(np.array([0.5]))
        masked = model(inputs)
        removed = pruner.orders[0][:4]
        kept = sorted(set(range(8)) - set(removed.tolist()))
        hidden = reference[0](inputs)[:, kept]
        norm = nn.functional.layer_norm(
            hidden, (4,), model[1].weight[kept], model[1].bias[kept], model[1].eps
        )
        smaller = torch.tanh(norm) @ model[3].weight[:, kept].T + model[3].bias
    torch.testing.assert_close(masked, smaller, rtol=1e-5, atol=1e-6)
    pruner.restore()
    assert model[1].channel_keep is None


def test_the_batched_forward_takes_each_candidates_layer_norm_statistics():
    def model():
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.LayerNorm(16), nn.Tanh(),
            nn.Linear(16, 12), nn.LayerNorm(12), nn.ReLU(), nn.Linear(12, 10),
        )  # fmt: skip

    task = make_task("image-classification", model=model, image_size=8, eval_images=32,
                     calibration_images=16, batch_size=16)  # fmt: skip
    report = check_task(task, candidates=6, rtol=1e-5)
    assert "batched" in report["batched_paths"]
    env = PruneEnv(task, batching="batched", cache=False)
    c = np.array([0.5, 0.25])
    assert env.evaluate_batch(c[None])[0]["loss"] == pytest.approx(env.step(c)[4]["loss"], 1e-6)


def test_layer_norm_2d_becomes_a_kept_layer_norm_over_the_channels():
    from torchvision.models.convnext import LayerNorm2d

    torch.manual_seed(0)
    norm = LayerNorm2d(6)
    nn.init.normal_(norm.weight)
    x = torch.randn(2, 6, 3, 3)
    expected = norm(x)
    model = nn.Sequential(norm)
    assert explicit_layer_norms(model) == 1 and isinstance(norm, KeptLayerNorm2d)
    assert torch.equal(norm(x), expected)  # the same function while nothing is masked
    keep = torch.tensor([1.0, 0, 1, 1, 0, 1])
    norm.channel_keep = keep
    kept = keep.bool()
    smaller = nn.functional.layer_norm(
        x[:, kept].permute(0, 2, 3, 1), (4,), norm.weight[kept], norm.bias[kept], norm.eps
    ).permute(0, 3, 1, 2)
    torch.testing.assert_close(norm(x * keep[:, None, None])[:, kept], smaller)


def test_torch_transformer_encoders_run_with_head_attention():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True)
    model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    x = torch.randn(3, 5, 16)
    with torch.no_grad():
        expected = model(x)
        assert explicit_attention(model) == 2
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
