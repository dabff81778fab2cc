"""The batched forward: K channel-masked candidates in one forward over the dense weights, masks
on the activations (BatchNorm, PReLU, residual additions), the memory budget, the probe that
guards it, and the CPU's choice of strategies."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from residual_task import ResidualTask
from torch import nn

from prunegym.envs import check_task
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks.base import Task


def test_batched_forward_handles_batchnorm_prelu_and_residual_additions():
    report = check_task(ResidualTask(), candidates=6, compensation="mean")
    assert report["batched_paths"] == ["batched"]
    assert report["largest_relative_difference"] < 1e-4
    env = PruneEnv(ResidualTask(), batching="batched", cache=False)
    assert len(env.groups) >= 3  # stem+body coupled by the residual, body inner, head
    rows = np.random.default_rng(1).uniform(0, 0.7, (9, len(env.groups)))
    batched = [i["mse"] for i in env.evaluate_batch(rows)]
    sequential = [env.step(row)[4]["mse"] for row in rows]
    np.testing.assert_allclose(batched, sequential, rtol=1e-4, atol=1e-7)
    assert max(batched) > 0  # the candidates really are pruned


class Quirky(nn.Module):
    """A small MLP whose forward breaks the batched forward's assumptions in one way."""

    def __init__(self, quirk: str) -> None:
        super().__init__()
        self.quirk = quirk
        self.body = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 8), nn.ReLU())
        self.norm = nn.BatchNorm1d(8, track_running_stats=quirk != "batch-statistics")
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        x = self.body(x)
        if self.quirk == "mixes-rows":
            x = x - x.mean(0)  # a statistic over the batch: candidates would see each other
        x = self.norm(x)
        if self.quirk == "functional" and len(x) % 30 == 0:  # on the evaluation batch only
            return nn.functional.linear(x, self.out.weight, self.out.bias)  # outside its forward
        return self.out(x)


class QuirkyTask(Task):
    name = "quirky"
    metric = "mse"
    higher_is_better = False

    def __init__(self, quirk: str) -> None:
        self.quirk = quirk
        generator = torch.Generator().manual_seed(0)
        self.inputs = torch.randn(30, 6, generator=generator)
        self.reference = self.build_model()(self.inputs).detach()

    def build_model(self):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return Quirky(self.quirk).eval()

    def components(self, model):
        return {"mlp": model}

    @property
    def example_inputs(self):
        return self.inputs[:4]

    def calibration_batches(self):
        return self.inputs.split(10)

    @torch.no_grad()
    def evaluate(self, model):
        return self.metrics_of_outputs(model(self.inputs))

    @property
    def evaluation_batch(self):
        return self.inputs

    def metrics_of_outputs(self, outputs):
        return {"mse": float((outputs - self.reference).pow(2).mean())}


@pytest.mark.parametrize(
    ("quirk", "message"),
    [
        ("functional", "the batched forward gives mse="),
        ("mixes-rows", "the batched forward gives mse="),
        ("batch-statistics", "BatchNorm with batch statistics"),
    ],
)
def test_a_forward_that_cannot_be_batched_is_refused(quirk, message):
    from prunegym.pruning.channel.candidate_masks import UnsupportedBatching

    with pytest.raises(UnsupportedBatching, match=message):
        PruneEnv(QuirkyTask(quirk), batching="batched")
    assert PruneEnv(QuirkyTask("none"), batching="batched").batch_strategy == "batched"
    # On a GPU, auto tries the batched forward first and falls back when the probe fails.
    from prunegym.envs.evaluation.strategies import make_strategy

    env = PruneEnv(QuirkyTask(quirk), batching="sequential")
    fallback = make_strategy("auto", env.task, env._model, env.pruner, on_gpu=True)
    assert fallback.name == "sequential"
    good = PruneEnv(QuirkyTask("none"), batching="sequential")
    assert make_strategy("auto", good.task, good._model, good.pruner, on_gpu=True).name == "batched"


@pytest.mark.parametrize("name", ["mnist-ae", "mnist-convnet", "mnist-classifier"])
def test_memory_budget_chunks_give_the_same_numbers(name):
    whole = PruneEnv(name, batching="batched", cache=False, batch_memory_mb=4096)
    tiny = PruneEnv(name, batching="batched", cache=False, batch_memory_mb=1e-3)
    assert tiny.evaluator.strategy.chunk == 1 < whole.evaluator.strategy.chunk
    rows = np.random.default_rng(2).uniform(0, 0.5, (5, len(whole.groups)))
    a = [i["metric"] for i in whole.evaluate_batch(rows)]
    b = [i["metric"] for i in tiny.evaluate_batch(rows)]
    np.testing.assert_allclose(a, b, rtol=1e-5)
    with pytest.raises(ValueError, match="batch_memory_mb must be > 0"):
        PruneEnv(name, batching="batched", batch_memory_mb=0)


def test_a_batch_after_a_step_runs_on_the_dense_weights():
    stepped = PruneEnv("mnist-classifier", batching="batched", cache=False)
    fresh = PruneEnv("mnist-classifier", batching="batched", cache=False)
    stepped.step(np.full(len(stepped.groups), 0.5))  # masks written into its model
    _ = stepped.model
    rows = np.array([[0.1, 0.2], [0.3, 0.0]])
    a = [i["loss"] for i in stepped.evaluate_batch(rows)]
    b = [i["loss"] for i in fresh.evaluate_batch(rows)]
    assert a == b
    _ = stepped.model  # the env re-applies its own masks when its model is read
    np.testing.assert_array_equal(
        stepped.pruner.applied_counts, stepped.pruned_counts(np.full(2, 0.5))
    )


def test_auto_keeps_the_cpu_strategies_and_batches_on_request():
    assert PruneEnv("mnist-ae").batch_strategy == "sliced"
    assert PruneEnv("mnist-classifier").batch_strategy == "sequential"
    assert PruneEnv("mnist-classifier", batching="batched").batch_strategy == "batched"
