"""Your own task, complete: an MLP on scikit-learn's 8×8 digits, pruned by every command.

    python examples/own_task.py            # check_task, then FD momentum at 30 % sparsity
    cd examples && prunegym solve own_task:DigitsTask --solver own_optimizer:OnePlusOne \\
        --target 0.3 --out run && prunegym validate run/result.json

A task owns a pretrained model, its data and its metric, and knows nothing about pruning.
What each member is for:

- ``build_model``: a fresh pretrained model in eval mode. Here it trains once (2 s) and saves
  ``digits_mlp.pt``; afterwards, and in every other process (``validate``), it loads that file,
  so the weights are the same everywhere (result files record their hash).
- ``components``: named submodules; groups are found per component, plus coupling groups.
- ``output_layers``: layers whose width the task fixes (never pruned); ``None``, the default,
  means the last Linear or convolution.
- ``example_inputs``: a small batch to trace the dependency graph.
- ``calibration_batches`` and ``forward``: batches may be anything ``forward(model, batch)``
  accepts; here ``(inputs, labels)`` pairs.
- ``loss``: only for gradient-based criteria (``taylor``).
- ``evaluate``: the metrics. It must be deterministic: the environment caches evaluations by
  mask and ``validate`` replays them.
- ``options``: the constructor arguments that rebuild the task (recorded in result files).
"""

from collections import OrderedDict
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn

import prunegym
from prunegym.agents import make_agent
from prunegym.tasks.checkpoints import safe_load


class DigitsTask(prunegym.Task):
    name = "digits"
    metric = "accuracy"
    higher_is_better = True
    metric_scale = 0.1  # the reward's unit: 10 points of accuracy
    output_kind = "logits"  # forward() gives class scores: the screen compares their softmax

    def __init__(self, checkpoint: str = "digits_mlp.pt") -> None:
        x, y = load_digits(return_X_y=True)
        x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        train, calibration, test = order[:1000], order[1000:1300], order[1300:]
        self.train, self.calibration, self.test = (x[train], y[train]), (
            x[calibration], y[calibration]), (x[test], y[test])  # fmt: skip
        self.checkpoint = Path(checkpoint)

    def options(self) -> dict:
        return {"checkpoint": str(self.checkpoint)}

    def build_model(self) -> nn.Module:
        features = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        model = nn.Sequential(OrderedDict(features=features, head=nn.Linear(64, 10)))
        if not self.checkpoint.exists():
            with torch.random.fork_rng():  # seeded, and the caller's random state is kept
                torch.manual_seed(0)
                for layer in (*features[::2], model.head):
                    layer.reset_parameters()
                optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
                for _ in range(300):
                    optimizer.zero_grad()
                    self.loss(model, self.train).backward()
                    optimizer.step()
            torch.save(model.state_dict(), self.checkpoint)
        model.load_state_dict(safe_load(self.checkpoint))
        return model.eval()

    def components(self, model: nn.Module) -> dict[str, nn.Module]:
        return {"features": model.features, "head": model.head}

    def output_layers(self, model: nn.Module) -> list[nn.Module]:
        return [model.head]  # the 10 class logits

    @property
    def example_inputs(self) -> torch.Tensor:
        return self.test[0][:2]

    def calibration_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        inputs, labels = self.calibration
        return list(zip(inputs.split(100), labels.split(100), strict=True))

    def forward(self, model: nn.Module, batch) -> torch.Tensor:
        inputs, _labels = batch
        return model(inputs)

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        inputs, labels = batch
        return nn.functional.cross_entropy(model(inputs), labels)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        inputs, labels = self.test
        logits = model(inputs)
        return {
            "accuracy": float((logits.argmax(1) == labels).float().mean()),
            "cross_entropy": float(nn.functional.cross_entropy(logits, labels)),
        }


def main() -> None:
    task = DigitsTask()
    prunegym.check_task(task)  # deterministic evaluate, batched paths, bit-exact reset
    env = prunegym.PruneEnv(task, target=0.3)
    result = make_agent("fd-momentum", progress=False).run(env)
    print(f"dense accuracy {env.dense_metric:.4f}, {len(env.groups)} groups")
    print(f"fd-momentum: accuracy {result.metric:.4f} at sparsity {result.sparsity:.4f}, "
          f"feasible {result.feasible}, {result.evaluations} evaluations")  # fmt: skip


if __name__ == "__main__":
    main()
