import copy

import numpy as np
import torch
import torch_pruning as tp

from prunegym.pruning.channel.groups import find_groups
from prunegym.pruning.channel.importance import rank_channels
from prunegym.pruning.channel.masks import ChannelMasker, pruned_counts


def _bits(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().contiguous().view(torch.int32)


def test_masks_zero_exactly_the_chosen_channels(toy_env):
    env = toy_env
    counts = np.array([5, 0, 3, 0, 2])
    env.pruner.masker.apply(counts)
    params = dict(env.pruner.model.named_parameters())  # the pruner's own writes, as they are
    dense = {p.name: p.dense for p in env.pruner.masker._plans}
    order = env.pruner.orders[0]  # encoder 1: rows of encoder.0, columns of encoder.2
    masked, kept = order[:5], order[5:]
    assert torch.all(params["encoder.0.weight"][masked] == 0)
    assert torch.all(params["encoder.0.bias"][masked] == 0)
    assert torch.all(params["encoder.2.weight"][:, masked] == 0)
    assert torch.equal(params["encoder.0.weight"][kept], dense["encoder.0.weight"][kept])
    assert torch.count_nonzero(params["encoder.0.weight"]) == (32 - 5) * 16
    coupling = env.pruner.orders[4]
    assert torch.all(params["encoder.4.weight"][coupling[:2]] == 0)
    assert torch.all(params["decoder.0.weight"][:, coupling[:2]] == 0)
    # decoder.0 rows belong to decoder group 1 (3 masked), its columns to the coupling group.
    assert torch.count_nonzero(params["decoder.0.weight"]) == (24 - 3) * (8 - 2)


def test_masked_model_equals_physically_pruned_model(conv_net):
    model, components, inputs = conv_net
    reference = copy.deepcopy(model)
    groups = find_groups(model, components, inputs)
    orders = rank_channels("l2", groups, model)
    counts = np.array([max(1, g.channels // 3) for g in groups])
    ChannelMasker(model, groups, orders).apply(counts)
    # Physically remove the same channels with Torch-Pruning on an untouched copy.
    graph = tp.DependencyGraph().build_dependency(reference, example_inputs=inputs)
    names = {module: name for name, module in model.named_modules()}
    reference_modules = dict(reference.named_modules())
    for group, order, count in zip(groups, orders, counts, strict=True):
        root = group.tp_group[0].dep
        layer = reference_modules[names[root.target.module]]
        graph.get_pruning_group(layer, root.handler, order[:count].tolist()).prune()
    pruned_size = sum(p.numel() for p in reference.parameters())
    assert pruned_size < sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        assert torch.allclose(model(inputs), reference(inputs), atol=1e-5)


def test_restore_returns_every_tensor_bit_for_bit(mnist_env):
    env = mnist_env
    before = {k: v.clone() for k, v in env.model.state_dict().items()}
    rng = np.random.default_rng(0)
    for _ in range(5):
        env.step(rng.uniform(0, 0.95, len(env.groups)).astype(np.float32))
    assert any(not torch.equal(before[k], v) for k, v in env.model.state_dict().items())
    env.reset(seed=1)
    for name, tensor in env.model.state_dict().items():
        assert torch.equal(_bits(tensor), _bits(before[name])), name


def test_rounding_is_half_up():
    channels = np.array([10, 4, 512])
    assert pruned_counts(np.array([0.25, 0.125, 0.95]), channels).tolist() == [3, 1, 486]
    assert pruned_counts(np.zeros(3), channels).tolist() == [0, 0, 0]


def test_no_group_is_cut_whole():
    channels = np.array([8, 10, 11, 1, 20])  # 0.95·n rounds to n for n ≤ 10
    assert pruned_counts(np.full(5, 0.95), channels).tolist() == [7, 9, 10, 0, 19]
    assert pruned_counts(np.full((2, 5), 0.95), channels).tolist() == [[7, 9, 10, 0, 19]] * 2


def test_incremental_masking_equals_a_fresh_mask_after_any_sequence(conv_net):
    """Steps rewrite only the slices whose masks changed; after any sequence of steps the
    parameters must equal restoring the dense model and masking once."""
    from prunegym.pruning.channel.pruner import SoftPruner

    model, components, inputs = conv_net
    reference = copy.deepcopy(model)
    pruner = SoftPruner(model, components, inputs, lambda: [inputs], lambda m, x: m(x))
    dense = copy.deepcopy(model.state_dict())
    mirrored = {name: getattr(reference, name) for name in components}
    twin = SoftPruner(reference, mirrored, inputs, lambda: [inputs], lambda m, x: m(x))
    rng = np.random.default_rng(0)
    for _ in range(25):
        coefficients = rng.choice([0.0, 0.2, 0.5, 0.9], size=len(pruner.groups))
        pruner.apply(coefficients)
        twin.restore()
        twin.apply(coefficients)
        other = reference.state_dict()
        for name, value in model.state_dict().items():
            assert torch.equal(value, other[name]), name
    pruner.restore()
    assert all(torch.equal(value, dense[name]) for name, value in model.state_dict().items())
