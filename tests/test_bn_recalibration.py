"""Adaptive BatchNorm (EagleEye): the statistics of each masked model re-estimated on B
calibration batches, composed with compensation, exported, and restored bit for bit."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from residual_task import ResidualTask
from torch import nn

from prunegym.envs.prune_env import PruneEnv

C = np.array([0.4, 0.3, 0.25])


def _statistics(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k}


def test_statistics_are_those_of_the_masked_model_on_the_calibration_batches():
    task = ResidualTask()
    env = PruneEnv(task, bn_recalibration=2, compensation="mean", cache=False)
    assert env.batch_strategy == "sequential" and env.options["bn_recalibration"] == 2
    dense_state = {k: v.clone() for k, v in env.model.state_dict().items()}
    dense_metric = env.dense_metric
    info = env.step(C)[4]
    recalibrated = _statistics(env.model)
    # By hand: the masked weights, BatchNorm reset, cumulative averages over both batches.
    manual = copy.deepcopy(env.model)
    for module in manual.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
            module.train()
    with torch.no_grad():
        for batch in list(task.calibration_batches())[:2]:
            manual(batch)
    for key, value in _statistics(manual).items():
        torch.testing.assert_close(recalibrated[key], value)
    assert any(not torch.equal(v, dense_state[k]) for k, v in recalibrated.items())
    assert not any(m.training for m in env.model.modules())  # back in evaluation mode
    assert env.step(C)[4]["metric"] == info["metric"]  # the same masks, the same statistics
    # The exported model carries the re-estimated statistics.
    exported = env.export(C)
    with torch.no_grad():
        torch.testing.assert_close(exported(task.images), env.model(task.images))
    env.reset()
    assert all(torch.equal(v, dense_state[k]) for k, v in env.model.state_dict().items())
    assert env.step(np.zeros(3))[4]["metric"] == dense_metric  # the dense statistics


def test_adaptive_batchnorm_changes_the_metric_of_masked_models_only():
    plain = PruneEnv(ResidualTask(), cache=False)
    adaptive = PruneEnv(ResidualTask(), bn_recalibration=2, cache=False)
    assert plain.dense_metric == adaptive.dense_metric
    assert plain.step(C)[4]["metric"] != adaptive.step(C)[4]["metric"]


def test_bad_bn_recalibration_settings_get_one_clear_line():
    with pytest.raises(ValueError, match="no BatchNorm"):
        PruneEnv("toy", bn_recalibration=1)
    with pytest.raises(ValueError, match="whole number"):
        PruneEnv(ResidualTask(), bn_recalibration=-1)
    with pytest.raises(ValueError, match="needs 5 calibration batches; the task has 2"):
        PruneEnv(ResidualTask(), bn_recalibration=5)
    with pytest.raises(ValueError, match="BatchNorm statistics are re-estimated"):
        PruneEnv(ResidualTask(), bn_recalibration=1, batching="batched")
    with pytest.raises(ValueError, match="channel granularity"):
        PruneEnv("toy", bn_recalibration=1, granularity="weight")
