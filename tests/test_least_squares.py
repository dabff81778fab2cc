"""Least-squares compensation (``compensation="lsq"``) and its criterion: the closed-form ridge
refit, never worse than mean compensation on the calibration data, exact reset and export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from prunegym.envs.prune_env import PruneEnv
from prunegym.pruning.channel.least_squares import LeastSquaresRefit
from prunegym.pruning.channel.pruner import SoftPruner

RIDGE = 0.05


def _net_and_inputs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 4))
    mixing = torch.randn(6, 6)
    inputs = torch.randn(200, 6) @ mixing  # correlated inputs: the kept units predict the rest
    return model, inputs


def _pruner(model, inputs, compensation, criterion="l2"):
    return SoftPruner(
        model, {"all": model}, inputs[:2], lambda: inputs.split(100), lambda m, x: m(x),
        criterion=criterion, compensation=compensation, lsq_ridge=RIDGE,
    )  # fmt: skip


@pytest.mark.parametrize("removed_count", [3, 7])  # solved over the removed, then the kept
def test_lsq_on_one_linear_consumer_is_the_closed_form_ridge_solution(removed_count):
    model, inputs = _net_and_inputs()
    dense = [p.detach().clone() for p in model[2].parameters()]
    with torch.no_grad():
        hidden = model[1](model[0](inputs)).double()
    pruner = _pruner(model, inputs, "lsq")
    pruner.apply(np.array([removed_count / 10]))
    removed = pruner.orders[0][:removed_count]
    kept = pruner.orders[0][removed_count:]
    mean = hidden.mean(0)
    covariance = (hidden - mean).T @ (hidden - mean) / len(hidden)
    ridge = RIDGE * covariance.diagonal().mean()
    weight, bias = dense[0].double(), dense[1].double()
    lost = weight[:, removed]
    gram = covariance[kept][:, kept] + ridge * torch.eye(len(kept), dtype=torch.float64)
    delta = torch.linalg.solve(gram, covariance[kept][:, removed] @ lost.T).T
    expected_bias = bias + lost @ mean[removed] - delta @ mean[kept]
    torch.testing.assert_close(model[2].weight[:, kept].double(), weight[:, kept] + delta,
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    assert bool((model[2].weight[:, removed] == 0).all())
    torch.testing.assert_close(model[2].bias.double(), expected_bias, rtol=1e-5, atol=1e-6)
    pruner.restore()
    assert torch.equal(model[2].weight, dense[0]) and torch.equal(model[2].bias, dense[1])


@pytest.mark.parametrize("level", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_lsq_never_reconstructs_the_calibration_outputs_worse_than_mean(level):
    errors = {}
    for compensation in ("mean", "lsq"):
        model, inputs = _net_and_inputs()
        with torch.no_grad():
            reference = model(inputs)
        pruner = _pruner(model, inputs, compensation)
        pruner.apply(np.array([level]))
        with torch.no_grad():
            errors[compensation] = float((model(inputs) - reference).pow(2).mean())
    assert errors["lsq"] <= errors["mean"] * (1 + 1e-6)
    if level >= 0.3:
        assert errors["lsq"] < 0.9 * errors["mean"]  # correlated inputs: a real gain


def test_lsq_criterion_ranks_by_the_error_left_after_the_refit():
    model, inputs = _net_and_inputs()
    with torch.no_grad():
        hidden = model[1](model[0](inputs)).double()
    pruner = _pruner(model, inputs, "lsq", criterion="lsq")
    covariance = torch.cov(hidden.T, correction=0)
    gram = covariance + RIDGE * covariance.diagonal().mean() * torch.eye(10, dtype=torch.float64)
    scores = model[2].weight.detach().double().pow(2).sum(0) / torch.linalg.inv(gram).diagonal()
    assert pruner.orders[0].tolist() == torch.argsort(scores).tolist()


def test_lsq_environment_resets_exactly_exports_the_refit_and_refuses_the_batched_path():
    env = PruneEnv("toy", compensation="lsq", cache=False)
    dense = {k: v.clone() for k, v in env.model.state_dict().items()}
    coefficients = np.array([0.3, 0.5, 0.1, 0.4, 0.25])
    info = env.step(coefficients)[4]
    mean_env = PruneEnv("toy", compensation="mean")
    assert info["mse"] <= mean_env.step(coefficients)[4]["mse"]
    with torch.no_grad():
        torch.testing.assert_close(
            env.export(coefficients)(env.task.inputs), env.model(env.task.inputs),
            rtol=1e-5, atol=1e-6,
        )  # fmt: skip
    assert env.step(np.zeros(5))[4]["mse"] == env.dense_metric
    env.reset()
    assert all(torch.equal(v, dense[k]) for k, v in env.model.state_dict().items())
    assert env.evaluate_batch(np.stack([coefficients, coefficients * 0.5]))[0]["mse"] == (
        pytest.approx(info["mse"], rel=1e-6)
    )
    with pytest.raises(ValueError, match="compensation='lsq'"):
        PruneEnv("toy", compensation="lsq", batching="batched")
    with pytest.raises(ValueError, match="lsq_ridge"):
        PruneEnv("toy", compensation="lsq", lsq_ridge=0.0)


@pytest.mark.parametrize("task", ["toy", "mnist-ae"])
def test_lsq_through_the_sliced_chain_equals_the_masked_model(task):
    sliced = PruneEnv(task, compensation="lsq", criterion="lsq", cache=False)
    assert sliced.batch_strategy == "sliced"  # the CPU default for chains, lsq included
    masked = PruneEnv(task, compensation="lsq", criterion="lsq", batching="sequential")
    groups = len(sliced.groups)
    rng = np.random.default_rng(0)
    candidates = np.concatenate([rng.uniform(0, 0.9, (6, groups)), np.zeros((1, groups))])
    candidates[1, 1:] = 0.0  # only the first group pruned: the second layer alone is refit
    metric = sliced.task.metric
    found = [info[metric] for info in sliced.evaluate_batch(candidates)]
    wanted = [info[metric] for info in masked.evaluate_batch(candidates)]
    np.testing.assert_allclose(found, wanted, rtol=1e-4, atol=1e-6)
    for c in candidates[:2]:  # step: the model seen afterwards carries the refit weights
        sliced.step(c)
        masked.step(c)
        for (name, value), other in zip(
            sliced.model.state_dict().items(), masked.model.state_dict().values(), strict=True
        ):
            torch.testing.assert_close(value, other, rtol=1e-5, atol=1e-6, msg=name)


def _conv_net_and_inputs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.Tanh(), nn.Conv2d(6, 3, 3, padding=1))
    return model, torch.randn(16, 2, 7, 7)


@pytest.mark.parametrize("removed_count", [2, 4])  # solved over the removed, then the kept
def test_lsq_on_a_convolution_is_the_ridge_solution_over_its_input_patches(removed_count):
    model, inputs = _conv_net_and_inputs()
    dense = model[2].weight.detach().clone().reshape(3, -1).double()
    with torch.no_grad():
        reference = model(inputs)
        hidden = model[1](model[0](inputs))
    patches = nn.functional.unfold(hidden, 3, padding=1).transpose(1, 2).reshape(-1, 54).double()
    pruner = _pruner(model, inputs, "lsq")
    pruner.apply(np.array([removed_count / 6]))
    removed = torch.zeros(6, dtype=torch.bool)
    removed[pruner.orders[0][:removed_count]] = True
    removed = removed.repeat_interleave(9)  # the 3×3 patch entries of each removed channel
    covariance = torch.cov(patches.T, correction=0)
    alive = covariance.diagonal() > 0
    kept = ~removed & alive
    ridge = RIDGE * covariance.diagonal()[alive].mean()
    gram = covariance[kept][:, kept] + ridge * torch.eye(int(kept.sum()), dtype=torch.float64)
    lost = dense[:, removed]
    delta = torch.linalg.solve(gram, covariance[kept][:, removed] @ lost.T).T
    got = model[2].weight.detach().reshape(3, -1).double()
    torch.testing.assert_close(got[:, kept], dense[:, kept] + delta, rtol=1e-5, atol=1e-6)
    assert bool((got[:, removed] == 0).all())
    with torch.no_grad():
        lsq_error = float((model(inputs) - reference).pow(2).mean())
    twin, _ = _conv_net_and_inputs()
    _pruner(twin, inputs, "mean").apply(np.array([removed_count / 6]))
    with torch.no_grad():
        assert lsq_error < float((twin(inputs) - reference).pow(2).mean())


@pytest.mark.parametrize("removed", [[3, 5], [0, 1, 2, 4, 5, 6]])  # removed fewer, then more
def test_refit_leaves_out_inputs_that_never_vary_in_both_forms(removed):
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(300, 8, generator=generator, dtype=torch.float64)
    inputs = inputs @ torch.randn(8, 8, generator=generator, dtype=torch.float64)
    inputs[:, 3] = 0.7  # a unit that never varies (never fires, or is always on)
    weight = torch.randn(4, 8, generator=generator)
    bias = torch.randn(4, generator=generator)
    mean, covariance = inputs.mean(0), torch.cov(inputs.T, correction=0)
    keep = torch.ones(8)
    keep[removed] = 0
    got_weight, got_bias = LeastSquaresRefit(weight, bias, mean, covariance, RIDGE).refit(keep)
    alive = covariance.diagonal() > 0
    gone, kept = keep == 0, (keep == 1) & alive
    lost = weight.double()[:, gone & alive]
    ridge = RIDGE * covariance.diagonal()[alive].mean()
    gram = covariance[kept][:, kept] + ridge * torch.eye(int(kept.sum()), dtype=torch.float64)
    delta = torch.linalg.solve(gram, covariance[kept][:, gone & alive] @ lost.T).T
    expected = weight.double().clone()
    expected[:, gone] = 0.0
    expected[:, kept] += delta
    expected_bias = bias.double() + weight.double()[:, gone] @ mean[gone] - delta @ mean[kept]
    assert got_weight.dtype == weight.dtype  # solved in float64, returned in the weight's dtype
    torch.testing.assert_close(got_weight.double(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_bias.double(), expected_bias, rtol=1e-5, atol=1e-6)
    assert torch.equal(got_weight[:, 3], weight[:, 3] * keep[3])  # never varies: untouched
