"""A user task whose metric is a mean over random episodes, for the test-episode tests (kept
out of the test modules: its ``test_episode_metrics`` is the Task hook, not a test)."""

import numpy as np
import torch

from prunegym.tasks.intervals import mean_ci95
from prunegym.tasks.toy import ToyTask


class NoisyToy(ToyTask):
    """A user task whose metric is a mean over random episodes: each episode adds seeded
    noise to the inputs. Search episodes use seeds 0–7, test episodes seeds 1,000 on."""

    name = "noisy-toy"
    test_episodes = 40

    def _episode_mse(self, model, seed: int) -> float:
        noise = torch.randn(self.inputs.shape, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            return float((model(self.inputs + 0.3 * noise) - self.reference).pow(2).mean())

    def evaluate(self, model):
        values = np.array([self._episode_mse(model, seed) for seed in range(8)])
        mean, half_width = mean_ci95(values)
        return {"mse": mean, "mse_ci95": half_width}

    def test_episode_metrics(self, model):
        return np.array([self._episode_mse(model, 1000 + i) for i in range(self.test_episodes)])
