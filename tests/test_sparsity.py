import numpy as np
import pytest
import torch
from torch import nn

from prunegym.pruning.channel.groups import find_groups
from prunegym.pruning.channel.importance import rank_channels
from prunegym.pruning.channel.masks import ChannelMasker
from prunegym.pruning.channel.sparsity import SparsityCounter


def _counter(model, components, inputs):
    groups = find_groups(model, components, inputs)
    orders = rank_channels("l2", groups, model)
    masker = ChannelMasker(model, groups, orders)
    shapes = {n: p.shape for n, p in model.named_parameters()}
    counter = SparsityCounter(masker.layout, orders, shapes, [g.parameters for g in groups])
    return groups, masker, counter


def test_exact_count_on_a_hand_built_model():
    # 3 -> 4 -> 2: one group of 4 hidden channels; the output layer stays whole.
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    groups, _, counter = _counter(model, {"net": model}, torch.randn(2, 3))
    assert len(groups) == 1
    assert counter.total == 3 * 4 + 4 + 4 * 2 + 2 == 26
    # Masking one hidden unit removes its row (3), its bias (1) and its column (2).
    assert int(counter.zeroed(np.array([1]))) == 6
    assert int(counter.zeroed(np.array([3]))) == 18
    assert groups[0].parameters == 3 * 4 + 4 + 4 * 2


def test_count_matches_zeros_of_an_all_ones_model(conv_net):
    model, components, inputs = conv_net
    with torch.no_grad():
        for param in model.parameters():
            param.fill_(1.0)  # now every zero comes from a mask
    groups, masker, counter = _counter(model, components, inputs)
    rng = np.random.default_rng(0)
    channels = np.array([g.channels for g in groups])
    for _ in range(10):
        counts = rng.integers(0, channels)
        masker.apply(counts)
        zeros = sum(int((p == 0).sum()) for p in model.parameters())
        assert int(counter.zeroed(counts)) == zeros
    batch = rng.integers(0, channels, size=(7, len(groups)))
    expected = [int(counter.zeroed(row)) for row in batch]
    assert counter.zeroed(batch).tolist() == expected


def test_paper_estimate_is_reported_beside_the_exact_count(toy_env):
    coefficients = np.full(len(toy_env.groups), 0.25)
    _, _, _, _, info = toy_env.step(coefficients)
    sizes = np.array([g.parameters for g in toy_env.groups])
    assert info["sparsity_estimate"] == pytest.approx(0.25 * sizes.sum() / info["params_total"])
    assert info["params_kept"] == info["params_total"] - round(
        info["sparsity"] * info["params_total"]
    )
    assert info["sparsity"] != info["sparsity_estimate"]


def test_counts_below_zero_mask_nothing_and_above_every_channel_mask_all(toy_env):
    counter = toy_env.pruner.counter
    channels = np.asarray(toy_env.channels)
    zero, full = np.zeros_like(channels), channels
    assert counter.zeroed(zero - 3) == counter.zeroed(zero) == 0
    assert counter.zeroed(full + 5) == counter.zeroed(full)
    rows = np.stack([zero, full, channels // 2])
    np.testing.assert_array_equal(counter.zeroed(rows), [counter.zeroed(r) for r in rows])
