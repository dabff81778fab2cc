"""Plug your own optimizer into prunegym: a (1+1) evolution strategy in 15 lines.

    python examples/own_optimizer.py

Subclass ``AskTellAgent``: ``ask`` proposes coefficients, ``tell`` receives their evaluations.
``problem.to_target`` scales any proposal onto the sparsity target using the exact parameter
count, so every candidate is feasible. ``run`` adds the budget, history, cache and progress bar.
"""

import numpy as np

from prunegym import PruneEnv
from prunegym.agents import AskTellAgent


class OnePlusOne(AskTellAgent):
    name = "one-plus-one"

    def start(self, problem):
        self.problem, self.rng, self.parent = problem, np.random.default_rng(0), None

    def ask(self):
        centre = np.ones(self.problem.size) if self.parent is None else self.parent.coefficients
        return self.problem.to_target(centre * np.exp(self.rng.normal(0, 0.3, centre.size)))

    def tell(self, candidates, evaluations):
        child = evaluations[0]
        if self.parent is None or child.reward > self.parent.reward:
            self.parent = child


def main(task: str = "mnist-ae", evaluations: int = 60) -> None:
    env = PruneEnv(task, target=0.4)
    result = OnePlusOne().run(env, evaluations)
    print(f"{result.metric_name} {result.metric:.3f} at sparsity {result.sparsity:.4f}")
    print(f"feasible {result.feasible}, {result.evaluations} evaluations")
    print(f"coefficients {np.round(result.coefficients, 3).tolist()}")


if __name__ == "__main__":
    main()
