"""Solvers for PruneEnv: one interface, ``agent.run(env, budget) -> Result``.

Every solver only uses the environment's public API. ``make_agent(name, **options)`` builds
one by name; ``agent_names()`` lists them.
"""

from __future__ import annotations

import importlib
import inspect

from prunegym.agents.base import Agent, AskTellAgent
from prunegym.agents.baselines import Fixed, NormBased, RandomSearch, Uniform
from prunegym.agents.fd_momentum import FDMomentum
from prunegym.agents.grid import GridSearch
from prunegym.agents.result import Budget, Evaluation, Result
from prunegym.agents.session import BudgetExhausted, NotApplicable, Problem, Session
from prunegym.agents.specs import split_solver_spec
from prunegym.tasks import check_plugin, entry_point_specs, plugin_factory, warn_if_replaced
from prunegym.tasks.options import annotations_of, check_options


def __getattr__(name: str):
    """Optional-dependency solvers load on first use (Torch-Pruning, Optuna, SB3)."""
    lazy = {
        "TorchPruningBaseline": "prunegym.agents.torch_pruning",
        "OptunaAgent": "prunegym.agents.optuna_adapter",
        "SB3Agent": "prunegym.agents.sb3",
        "TargetInObservation": "prunegym.agents.sb3",
        "DrawnTarget": "prunegym.agents.sb3",
        "GroupSetExtractor": "prunegym.agents.sb3_features",
        "transfer_policy": "prunegym.agents.sb3_features",
        "sb3_sequential_env": "prunegym.agents.sb3_features",
        "TaskMixture": "prunegym.agents.sb3_features",
    }
    if name in lazy:
        return getattr(importlib.import_module(lazy[name]), name)
    raise AttributeError(f"module 'prunegym.agents' has no attribute {name!r}")


_REGISTRY = {
    "grid": ("prunegym.agents.grid", "GridSearch", {}),
    "fd-momentum": ("prunegym.agents.fd_momentum", "FDMomentum", {}),
    "uniform": ("prunegym.agents.baselines", "Uniform", {}),
    "norm": ("prunegym.agents.baselines", "NormBased", {}),
    "lamp": ("prunegym.agents.baselines", "LAMPAllocation", {}),
    "random": ("prunegym.agents.baselines", "RandomSearch", {}),
    "torch-pruning": ("prunegym.agents.torch_pruning", "TorchPruningBaseline", {}),
    "optuna-tpe": ("prunegym.agents.optuna_adapter", "OptunaAgent", {"sampler": "tpe"}),
    "optuna-cmaes": ("prunegym.agents.optuna_adapter", "OptunaAgent", {"sampler": "cmaes"}),
    "ppo": ("prunegym.agents.sb3", "SB3Agent", {"algo": "PPO"}),
    "sac": ("prunegym.agents.sb3", "SB3Agent", {"algo": "SAC"}),
    "td3": ("prunegym.agents.sb3", "SB3Agent", {"algo": "TD3"}),
    "learned-policy": ("prunegym.agents.learned_policy", "LearnedPolicy", {}),
}

TORCH_PRUNING_CRITERIA = ("magnitude", "lamp", "taylor", "hessian", "bn-scale", "fpgm")
# "what you would use instead": Torch-Pruning with each of its criteria, by name
_BASELINES = {
    f"torch-pruning-{criterion}": (
        "prunegym.agents.torch_pruning", "TorchPruningBaseline", {"importance": criterion}
    )
    for criterion in TORCH_PRUNING_CRITERIA
}  # fmt: skip


_REGISTERED: dict[str, object] = {}
ENTRY_POINT_GROUP = "prunegym.agents"


def register_agent(name: str, factory) -> None:
    """Make ``name`` a solver of :func:`make_agent`, ``prunegym solve --solver`` and ``bench``.

    Args:
        name: The solver's name (no ``:``).
        factory: An :class:`Agent` subclass, a callable returning an Agent, or a
            ``"module:attribute"`` string naming one; its keyword arguments are the solver's
            options (``progress``, ``seed`` and ``metric_floor`` included).
    """
    check_plugin("solver", name, factory)
    built_in = {*_REGISTRY, *_BASELINES}
    warn_if_replaced("solver", name, factory, _REGISTERED, built_in, ENTRY_POINT_GROUP)
    _REGISTERED[name] = factory


def agent_names() -> list[str]:
    """Names accepted by :func:`make_agent` and ``prunegym solve --solver`` (built-in first,
    then registered and installed ones); ``module:attribute`` specs and the names of
    :func:`baseline_names` work too."""
    installed = entry_point_specs(ENTRY_POINT_GROUP)
    return list(dict.fromkeys([*_REGISTRY, *_REGISTERED, *installed]))


def prunes_its_own_model(solver: str) -> bool:
    """Whether results of ``solver`` come from a network it pruned itself (Torch-Pruning, any
    criterion), so that replaying them means re-running the solver, not stepping the masks."""
    name, _ = split_solver_spec(solver)
    return name == "torch-pruning" or name in _BASELINES


def baseline_names() -> list[str]:
    """``torch-pruning-<criterion>`` for each of Torch-Pruning's criteria
    (:data:`TORCH_PRUNING_CRITERIA`): the solver ``torch-pruning`` with that ``importance``.
    ``prunegym bench`` runs them all next to the solvers it is given."""
    return list(_BASELINES)


def _option_names(factory) -> list[str]:
    """The keyword options ``factory`` (a class or a function) takes, its bases' included."""
    if isinstance(factory, type):
        return list(annotations_of(factory))
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def make_agent(name: str, **options) -> Agent:
    """Build a solver by name or ``module:attribute`` spec, e.g.
    ``make_agent("fd-momentum", momentum=0.8)`` or ``make_agent("mysolver:MySolver")``; either
    may carry settings, ``make_agent("learned-policy:refine=50")`` (:mod:`prunegym.agents.specs`;
    ``options`` override them). Sources, in order: :func:`register_agent`, the built-in
    solvers, the ``prunegym.agents`` entry-point group of installed packages, and specs. The
    agent is named by ``name``, settings included, so its results record how to build it
    again."""
    spec = name
    name, settings = split_solver_spec(spec)
    options = {**settings, **options}
    defaults: dict = {}
    found = _REGISTERED.get(name)
    built_in = _REGISTRY.get(name) or _BASELINES.get(name)
    if found is None and built_in:
        module, cls, defaults = built_in
        found = getattr(importlib.import_module(module), cls)
    found = found or entry_point_specs(ENTRY_POINT_GROUP).get(name)
    try:
        factory = plugin_factory("solver", name, found, Agent, agent_names())
    except ValueError as error:
        head, _, setting = name.partition(":")
        if found is None and head in [*agent_names(), *_BASELINES] and setting.islower():
            raise ValueError(  # "random:samples", most likely not a module:attribute spec
                f"solver spec {spec!r}: the setting {setting!r} needs a value, key=value "
                f"(read as module:attribute: {error})"
            ) from None
        raise
    if isinstance(factory, type):
        check_options(f"solver {spec!r}", {**defaults, **options}, factory)
    try:
        agent = factory(**{**defaults, **options})
    except TypeError as error:  # an unknown keyword: say which solver and option
        accepted = ", ".join(_option_names(factory))
        hint = f"; it takes {accepted}" if accepted else ""
        raise ValueError(f"bad option for solver {name!r}: {error}{hint}") from error
    if not isinstance(agent, Agent):
        raise ValueError(f"solver {name!r} built a {type(agent).__name__}, not a prunegym Agent")
    agent.name = spec
    return agent


__all__ = [
    "Agent",
    "AskTellAgent",
    "Budget",
    "BudgetExhausted",
    "DrawnTarget",
    "Evaluation",
    "FDMomentum",
    "Fixed",
    "GridSearch",
    "GroupSetExtractor",
    "NormBased",
    "NotApplicable",
    "OptunaAgent",
    "SB3Agent",
    "TargetInObservation",
    "TaskMixture",
    "TorchPruningBaseline",
    "Problem",
    "RandomSearch",
    "Result",
    "Session",
    "Uniform",
    "agent_names",
    "sb3_sequential_env",
    "transfer_policy",
    "baseline_names",
    "prunes_its_own_model",
    "make_agent",
    "register_agent",
]
