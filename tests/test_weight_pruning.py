"""Weight-level criteria (elimination-compensation and its baselines), masks and fine-tuning."""

import pytest
import torch
from torch import nn

from prunegym.pruning.weight.importance import (
    TooLargeForBruteForce,
    elimination_compensation,
    linear_layers,
    nonlinear_importance,
)
from prunegym.pruning.weight.masks import (
    apply_weight_masks,
    global_masks,
    layer_masks,
    pruned_fraction,
    weight_scores,
)


def _tiny(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 5), nn.PReLU(), nn.Linear(5, 2))


def _brute_force_linearised(model, inputs):
    """Eq. (5) solved weight by weight from per-sample Jacobians: Δb* = argmin and I = min."""
    names = [name for name, module in model.named_children() if isinstance(module, nn.Linear)]
    rows = {name: [] for name in names}  # per sample: (K, ...) gradients of weight and bias
    for x in inputs:
        output = model(x[None])[0]
        grads = []
        for k in range(output.shape[0]):
            model.zero_grad()
            output[k].backward(retain_graph=True)
            layers = {n: model.get_submodule(n) for n in names}
            grads.append(
                {n: (m.weight.grad.clone(), m.bias.grad.clone()) for n, m in layers.items()}
            )
        for n in names:
            rows[n].append(
                (torch.stack([g[n][0] for g in grads]), torch.stack([g[n][1] for g in grads]))
            )
    jacobians = {}
    for n in names:
        jacobians[f"{n}.weight"] = torch.stack([w for w, _ in rows[n]])
        jacobians[f"{n}.bias"] = torch.stack([b for _, b in rows[n]])
    results = {}
    for name, module in model.named_children():
        if not isinstance(module, nn.Linear):
            continue
        dw = jacobians[f"{name}.weight"].double()  # (N, K, rows, cols)
        db = jacobians[f"{name}.bias"].double()  # (N, K, rows)
        weight = module.weight.detach().double()
        importance = torch.zeros_like(weight)
        shift = torch.zeros_like(weight)
        for i in range(weight.shape[0]):
            for j in range(weight.shape[1]):
                signal = dw[:, :, i, j] * weight[i, j]  # (N, K)
                bias = db[:, :, i]
                best = (signal * bias).sum(1).mean() / (bias**2).sum(1).mean()
                shift[i, j] = best
                importance[i, j] = ((signal - bias * best) ** 2).sum(1).mean()
        results[module] = (importance, shift)
    return results


def test_elimination_compensation_matches_a_weight_by_weight_computation():
    model = _tiny().double()
    inputs = torch.randn(64, 3, dtype=torch.float64)
    scores, shifts = elimination_compensation(model, inputs.split(16), lambda m, x: m(x))
    expected = _brute_force_linearised(model, inputs)
    assert set(scores) == set(linear_layers(model))
    for layer, (importance, shift) in expected.items():
        assert torch.allclose(scores[layer].double(), importance, rtol=1e-4, atol=1e-9)
        assert torch.allclose(shifts[layer].double(), shift, rtol=1e-4, atol=1e-9)
        assert importance.max() > 1e-3  # not trivially zero


def test_nonlinear_importance_is_the_true_output_change_and_tracks_the_first_order_one():
    model = _tiny(1)
    inputs = torch.randn(32, 3)
    scores = nonlinear_importance(model, inputs, chunk=7)
    layer = linear_layers(model)[1]
    with torch.no_grad():
        reference = model(inputs)
        z = model[1](model[0](inputs))
        saved_w, saved_b = layer.weight[2, 3].clone(), layer.bias[2].clone()
        layer.bias[2] += saved_w * z[:, 3].mean()
        layer.weight[2, 3] = 0.0
        changed = model(inputs)
        layer.weight[2, 3], layer.bias[2] = saved_w, saved_b
    true = ((changed - reference) ** 2).sum(1).mean()
    assert scores[layer][2, 3] == pytest.approx(float(true), rel=1e-5)
    first_order, _ = elimination_compensation(model, [inputs], lambda m, x: m(x))
    ranks = [
        torch.argsort(torch.argsort(s[layer].reshape(-1))).float() for s in (scores, first_order)
    ]
    assert torch.corrcoef(torch.stack(ranks))[0, 1] > 0.8


def test_the_brute_force_guard_refuses_large_networks():
    model = nn.Sequential(nn.Linear(300, 300), nn.ReLU(), nn.Linear(300, 10))
    with pytest.raises(TooLargeForBruteForce, match="93,000 weights exceed max_weights=60,000"):
        nonlinear_importance(model, torch.randn(4, 300))


def test_global_masks_prune_the_ratio_of_all_weights_and_compensation_shifts_biases():
    model = _tiny()
    inputs = torch.randn(40, 3)
    scores, shifts = weight_scores(model, "elimination-compensation", [inputs], lambda m, x: m(x))
    masks = global_masks(scores, 0.5)
    assert pruned_fraction(masks) == pytest.approx(0.5, abs=1 / 42)
    lowest = min(
        float(scores[layer][~mask].max()) for layer, mask in masks.items() if (~mask).any()
    )
    assert lowest <= max(float(scores[layer][mask].min()) for layer, mask in masks.items())
    layer = linear_layers(model)[1]
    bias = layer.bias.detach().clone()
    expected = bias + (shifts[layer] * (~masks[layer])).sum(1)
    apply_weight_masks(masks, shifts)
    assert torch.allclose(layer.bias, expected) and not torch.equal(layer.bias, bias)
    for lay, mask in masks.items():
        assert torch.all(lay.weight[~mask] == 0)
    per_layer = layer_masks({lay: lay.weight.abs() for lay in linear_layers(model)}, [0.25, 0, 0.5])
    assert [int((~m).sum()) for m in per_layer.values()] == [3, 0, 5]


def test_compensation_lowers_the_output_error_of_the_same_masks():
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Linear(6, 16), nn.PReLU(), nn.Linear(16, 16), nn.PReLU(), nn.Linear(16, 3)
    )
    inputs = torch.rand(256, 6) + 0.5  # non-centred inputs: the bias shift matters
    with torch.no_grad():
        reference = model(inputs)
    scores, shifts = weight_scores(model, "elimination-compensation", [inputs], lambda m, x: m(x))
    masks = global_masks(scores, 0.3)
    errors = []
    for use in (None, shifts):
        copy = _clone(model)
        moved = {_same(copy, model, lay): m for lay, m in masks.items()}
        shifted = None if use is None else {_same(copy, model, lay): s for lay, s in use.items()}
        apply_weight_masks(moved, shifted)
        with torch.no_grad():
            errors.append(float(((copy(inputs) - reference) ** 2).mean()))
    assert errors[1] < 0.5 * errors[0]


def _clone(model):
    import copy

    return copy.deepcopy(model)


def _same(copy, model, layer):
    index = linear_layers(model).index(layer)
    return linear_layers(copy)[index]


def test_weight_scores_rejects_unknown_criteria_and_missing_inputs():
    model = _tiny()
    with pytest.raises(ValueError, match="unknown weight criterion 'hessian'"):
        weight_scores(model, "hessian")
    with pytest.raises(ValueError, match="needs the task's loss"):
        weight_scores(model, "gradient-magnitude", [torch.randn(2, 3)])
    with pytest.raises(ValueError, match="pruning ratio must lie in"):
        global_masks({linear_layers(model)[0]: torch.rand(4, 3)}, 1.0)


def test_finetuning_keeps_masked_weights_at_zero_and_lowers_the_loss():
    from prunegym.tasks.fitting import finetune

    torch.manual_seed(0)
    model = _tiny()
    inputs = torch.randn(128, 3)
    with torch.no_grad():
        targets = model(inputs)  # the dense model's outputs: pruning hurts, training recovers
    masks = global_masks(weight_scores(model, "magnitude")[0], 0.6)
    apply_weight_masks(masks)

    def loss(m, batch):
        return nn.functional.mse_loss(m(batch[0]), batch[1])

    history = finetune(model, masks, 20, lambda epoch: [(inputs, targets)], loss, 1e-2)
    assert history[-1] < 0.8 * history[0]
    for layer, mask in masks.items():
        assert torch.all(layer.weight[~mask] == 0) and torch.any(layer.weight[mask] != 0)


def test_pruned_copy_leaves_the_model_alone_and_masks_the_copy():
    from prunegym.pruning.weight.masks import pruned_copy

    model = _tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inputs = torch.randn(40, 3)
    scores, shifts = weight_scores(model, "elimination-compensation", [inputs], lambda m, x: m(x))
    pruned, masks = pruned_copy(model, scores, shifts, 0.4)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert set(masks) == set(linear_layers(pruned)) and pruned_fraction(masks) == pytest.approx(
        0.4, abs=1 / 42
    )
    for layer, keep in masks.items():
        assert torch.all(layer.weight[~keep] == 0)
