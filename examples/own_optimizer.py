"""Plug your own optimizer into prunegym: a (1+1) evolution strategy in 19 lines.

    python examples/own_optimizer.py
    cd examples && prunegym solve mnist-ae --solver own_optimizer:OnePlusOne --target 0.4

Subclass ``AskTellAgent``: ``ask`` proposes coefficients (``(m,)`` or ``(K, m)``; ``None``
stops), ``tell`` receives their evaluations. ``problem.to_target`` scales any proposal onto the
sparsity target using the exact parameter count, so every candidate is feasible. ``run`` adds
the budget, history, progress bar and the environment's cache (repeated masks cost nothing).
This one stops by itself after ``generations``; a solver that never does sets
``terminates = False``, and ``run`` then refuses to start without a budget.
"""

import numpy as np

from prunegym import PruneEnv
from prunegym.agents import AskTellAgent


class OnePlusOne(AskTellAgent):
    name = "one-plus-one"
    generations = 60  # then ask() returns None and the run ends by itself

    def start(self, problem):
        self.problem, self.rng, self.parent = problem, np.random.default_rng(0), None
        self.left = self.generations

    def ask(self):
        self.left -= 1
        if self.left < 0:
            return None
        centre = np.ones(self.problem.size) if self.parent is None else self.parent.coefficients
        return self.problem.to_target(centre * np.exp(self.rng.normal(0, 0.3, centre.size)))

    def tell(self, candidates, evaluations):
        child = evaluations[0]
        if self.parent is None or child.reward > self.parent.reward:
            self.parent = child


def main(task: str = "mnist-ae", generations: int = 60) -> None:
    env = PruneEnv(task, target=0.4)
    agent = OnePlusOne()
    agent.generations = generations
    result = agent.run(env)
    print(f"{result.metric_name} {result.metric:.3f} at sparsity {result.sparsity:.4f}")
    print(f"feasible {result.feasible}, {result.evaluations} evaluations")
    print(f"coefficients {np.round(result.coefficients, 3).tolist()}")


if __name__ == "__main__":
    main()
