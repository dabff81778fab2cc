"""Physically pruned export, and the validate/export commands."""

import json

import numpy as np
import pytest
import torch

from prunegym.cli.main import main
from prunegym.envs.prune_env import PruneEnv
from prunegym.pruning.channel.macs import count_macs
from prunegym.pruning.export import model_cost, removed_fractions, save_exported
from prunegym.tasks import make_task


def _export_and_compare(env, coefficients, inputs):
    """Export, then return (pruned model, env state unchanged?, max |Δ output|, parameter
    count of the exported model, exact params_kept of the masked model)."""
    before = {k: v.clone() for k, v in env.model.state_dict().items()}
    pruned = env.export(coefficients)
    untouched = all(torch.equal(before[k], v) for k, v in env.model.state_dict().items())
    _, _, _, _, info = env.step(coefficients)
    with torch.no_grad():
        difference = float((pruned(inputs) - env.model(inputs)).abs().max())
    kept = sum(p.numel() for p in pruned.parameters())
    return pruned, untouched, difference, kept, info["params_kept"]


def test_exported_toy_model_equals_the_masked_one(tmp_path):
    env = PruneEnv("toy", compensation="mean")
    coefficients = np.array([0.3, 0.5, 0.1, 0.4, 0.25])
    pruned, untouched, difference, kept, params_kept = _export_and_compare(
        env, coefficients, env.task.inputs
    )
    assert untouched and difference <= 1e-5
    assert kept == params_kept  # the exact sparsity count is the physical one
    path = save_exported(pruned, env.task.example_inputs, tmp_path / "toy.pt2")
    loaded = torch.export.load(path).module()  # plain PyTorch, no prunegym objects
    with torch.no_grad():
        assert torch.allclose(loaded(env.task.inputs), pruned(env.task.inputs), atol=1e-6)
    dense_macs, dense_parameters = model_cost(env.model, env.task.example_inputs)
    macs, parameters = model_cost(pruned, env.task.example_inputs)
    assert macs < dense_macs and parameters < dense_parameters


def test_exported_autoencoder_equals_the_masked_one(mnist_env):
    mnist_env.reset()
    coefficients = np.array([0.2, 0.3, 0.1, 0.4, 0.2])
    _, untouched, difference, kept, params_kept = _export_and_compare(
        mnist_env, coefficients, mnist_env.task.eval_images
    )
    mnist_env.reset()
    assert untouched and difference <= 1e-5
    assert kept == params_kept < mnist_env.pruner.total_parameters


def test_validate_passes_on_a_fresh_result_and_fails_on_a_tampered_one(tmp_path, capsys):
    path = tmp_path / "run" / "result.json"
    assert main(["solve", "toy", "--solver", "uniform", "--out", str(path.parent)]) == 0
    assert main(["validate", str(path)]) == 0
    assert "validated" in capsys.readouterr().out
    record = json.loads(path.read_text())
    record["metric"] *= 1.5
    record["sparsity"] += 0.01
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(record))
    assert main(["validate", str(tampered)]) == 1
    err = capsys.readouterr().err
    assert "validation failed" in err and "mse is" in err and "sparsity is" in err
    assert main(["validate", str(tmp_path / "missing.json")]) == 2
    assert "result file not found" in capsys.readouterr().err
    (tmp_path / "junk.json").write_text("{not json")
    assert main(["validate", str(tmp_path / "junk.json")]) == 2


def test_export_command_writes_a_loadable_smaller_model(tmp_path, capsys):
    path = tmp_path / "run" / "result.json"
    assert main(["solve", "toy", "--solver", "fd-momentum", "--out", str(path.parent)]) == 0
    out = tmp_path / "model.pt2"
    assert main(["export", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "parameters" in printed and "MACs" in printed and out.stat().st_size > 0
    assert torch.export.load(out).module()(torch.zeros(3, 16)).shape == (3, 16)


@pytest.mark.parametrize("name", ["toy", "mnist-convnet", "resnet18", "vit"])
def test_macs_counted_from_the_masks_equal_the_exported_models(name):
    if name in ("resnet18", "vit"):
        model = "resnet18" if name == "resnet18" else _tiny_vit
        task = make_task("image-classification", model=model, image_size=32, eval_images=4,
                         calibration_images=4, batch_size=4)  # fmt: skip
        env = PruneEnv(task)
    else:
        env = PruneEnv(name)
    coefficients = np.linspace(0.1, 0.6, len(env.groups))
    info = env.step(coefficients)[4]
    exported = env.export(coefficients)
    inputs = env.task.example_inputs
    assert info["macs"] == count_macs(exported, inputs) < info["macs_dense"]
    env.reset()
    assert info["macs_dense"] == count_macs(env.model, inputs)
    fractions = np.asarray(info["channel_fractions"])
    assert np.allclose(fractions, removed_fractions(env.groups, env.model, exported))
    assert env.costs_of(coefficients)["macs"] == info["macs"]
    assert env.costs_of(np.ones(len(env.groups)))["macs"] < info["macs"]  # up to 1, for TP
    with pytest.raises(ValueError, match="fractions in"):
        env.costs_of(np.full(len(env.groups), 1.5))


def _tiny_vit():
    from torchvision.models.vision_transformer import VisionTransformer

    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4,
                             hidden_dim=32, mlp_dim=64, num_classes=10)  # fmt: skip
