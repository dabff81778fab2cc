import numpy as np
import pytest
import torch
from torch import nn

from prunegym.pruning import SoftPruner
from prunegym.pruning.channel.compensation import check_compensation


def _mlp_and_data(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 7), nn.ReLU(), nn.Linear(7, 3))
    data = torch.randn(128, 6) + 1.0
    return model.eval(), list(data.split(32))


def _pruner(model, batches, **kwargs):
    return SoftPruner(
        model, {"net": model}, batches[0], lambda: batches, lambda m, b: m(b), **kwargs
    )


def _mean_preactivation(module, model, batches):
    outputs = []
    handle = module.register_forward_hook(lambda m, a, out: outputs.append(out.detach()))
    with torch.no_grad():
        for batch in batches:
            model(batch)
    handle.remove()
    return torch.cat(outputs).mean(0)


def test_mean_compensation_keeps_the_consumer_mean_preactivation():
    model, batches = _mlp_and_data()
    pruner = _pruner(
        model,
        batches,
        criterion="l2",
        compensation="mean",
    )
    consumer = model[2]  # reads the first group's 10 channels
    dense_mean = _mean_preactivation(consumer, model, batches)
    pruner.masker.apply(
        np.array([6, 0])
    )  # only the first group: consumer inputs unchanged otherwise
    compensated_mean = _mean_preactivation(consumer, model, batches)
    assert torch.allclose(compensated_mean, dense_mean, atol=1e-5)
    pruner.restore()
    plain = _pruner(
        model,
        batches,
        criterion="l2",
        compensation="none",
    )
    plain.masker.apply(np.array([6, 0]))
    uncompensated_mean = _mean_preactivation(consumer, model, batches)
    assert not torch.allclose(uncompensated_mean, dense_mean, atol=1e-3)


def test_optimal_equals_mean_when_output_sensitivity_is_constant():
    # The last layer's pre-activation is the output, so Σ_k (∂y_k/∂a_i)² = 1 for every sample.
    model, batches = _mlp_and_data(1)
    kwargs = dict(criterion="l2", probes=4)
    mean = _pruner(
        model,
        batches,
        compensation="mean",
        **kwargs,
    )
    optimal = _pruner(
        model,
        batches,
        compensation="optimal",
        **kwargs,
    )
    last = next(p for p in optimal.masker._plans if p.name == "4.bias")
    reference = next(p for p in mean.masker._plans if p.name == "4.bias")
    assert torch.allclose(last.shift, reference.shift, atol=1e-5)
    inner = next(p for p in optimal.masker._plans if p.name == "2.bias")
    inner_mean = next(p for p in mean.masker._plans if p.name == "2.bias")
    assert not torch.allclose(inner.shift, inner_mean.shift, atol=1e-4)


def test_bias_free_consumer_gets_a_bias_in_the_owned_copy_only(conv_net):
    model, components, inputs = conv_net
    batches = [inputs, inputs + 1]
    assert model.block[0].bias is None
    SoftPruner(model, components, inputs, lambda: batches, lambda m, b: m(b), criterion="l2")
    assert model.block[0].bias is not None and torch.all(model.block[0].bias == 0)


def test_unknown_compensation_lists_the_valid_ones():
    with pytest.raises(ValueError, match="none, mean, optimal"):
        check_compensation("median")
