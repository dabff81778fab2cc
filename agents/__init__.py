"""Solvers for PruneEnv: one interface, ``agent.run(env, budget) -> Result``.

Every solver only uses the environment's public API. ``make_agent(name, **options)`` builds
one by name; ``agent_names()`` lists them.
"""

from __future__ import annotations

from prunegym.agents.base import Agent, AskTellAgent
from prunegym.agents.baselines import Fixed, NormBased, RandomSearch, Uniform
from prunegym.agents.fd_momentum import FDMomentum
from prunegym.agents.grid import GridSearch
from prunegym.agents.replay import (
    IncompatibleResult,
    OtherWeights,
    check_compatible,
    environment_for,
)
from prunegym.agents.result import Budget, Evaluation, Result
from prunegym.agents.session import BudgetExhausted, Problem, Session


def __getattr__(name: str):
    """Optional-dependency solvers load on first use (Torch-Pruning, Optuna, SB3)."""
    lazy = {
        "TorchPruningBaseline": "prunegym.agents.torch_pruning",
        "OptunaAgent": "prunegym.agents.optuna_adapter",
        "SB3Agent": "prunegym.agents.sb3",
        "TargetInObservation": "prunegym.agents.sb3",
    }
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(lazy[name]), name)
    raise AttributeError(f"module 'prunegym.agents' has no attribute {name!r}")


_REGISTRY = {
    "grid": ("prunegym.agents.grid", "GridSearch", {}),
    "fd-momentum": ("prunegym.agents.fd_momentum", "FDMomentum", {}),
    "uniform": ("prunegym.agents.baselines", "Uniform", {}),
    "norm": ("prunegym.agents.baselines", "NormBased", {}),
    "random": ("prunegym.agents.baselines", "RandomSearch", {}),
    "torch-pruning": ("prunegym.agents.torch_pruning", "TorchPruningBaseline", {}),
    "optuna-tpe": ("prunegym.agents.optuna_adapter", "OptunaAgent", {"sampler": "tpe"}),
    "optuna-cmaes": ("prunegym.agents.optuna_adapter", "OptunaAgent", {"sampler": "cmaes"}),
    "ppo": ("prunegym.agents.sb3", "SB3Agent", {"algo": "PPO"}),
    "sac": ("prunegym.agents.sb3", "SB3Agent", {"algo": "SAC"}),
    "td3": ("prunegym.agents.sb3", "SB3Agent", {"algo": "TD3"}),
}


def agent_names() -> list[str]:
    """Names accepted by :func:`make_agent` and ``prunegym solve --solver``."""
    return list(_REGISTRY)


def make_agent(name: str, **options) -> Agent:
    """Build a solver by name, e.g. ``make_agent("fd-momentum", momentum=0.8)``."""
    import importlib

    if name not in _REGISTRY:
        raise ValueError(f"unknown solver {name!r}; choose one of {agent_names()}")
    module, cls, defaults = _REGISTRY[name]
    try:
        return getattr(importlib.import_module(module), cls)(**{**defaults, **options})
    except TypeError as error:  # an unknown keyword: say which solver and option
        raise ValueError(f"bad option for solver {name!r}: {error}") from error


__all__ = [
    "Agent",
    "AskTellAgent",
    "Budget",
    "BudgetExhausted",
    "Evaluation",
    "FDMomentum",
    "Fixed",
    "GridSearch",
    "IncompatibleResult",
    "NormBased",
    "OtherWeights",
    "OptunaAgent",
    "SB3Agent",
    "TargetInObservation",
    "TorchPruningBaseline",
    "Problem",
    "RandomSearch",
    "Result",
    "Session",
    "Uniform",
    "agent_names",
    "check_compatible",
    "environment_for",
    "make_agent",
]
