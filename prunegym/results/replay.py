"""Rebuild the environment a result was found in, refusing results from other weights."""

from __future__ import annotations

import inspect

from prunegym.agents import make_agent
from prunegym.agents.result import Result
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks import make_task


class IncompatibleResult(ValueError):
    """The result was found on other weights (or another task) than the ones loaded now."""


class OtherWeights(IncompatibleResult):
    """The result records a hash of the dense weights that differs from the loaded weights'."""


def check_compatible(result: Result, env) -> None:
    """Raise :class:`IncompatibleResult` unless ``env`` holds the task and dense weights that
    ``result`` records (its ``weights_sha256``) and the same number of pruning groups."""
    core = env.unwrapped
    if result.task != core.task.name:
        raise IncompatibleResult(
            f"the result is for task {result.task!r}, the environment runs {core.task.name!r}"
        )
    if not result.weights_sha256:
        raise IncompatibleResult(
            "the result records no weights_sha256, so the weights it was found on are unknown; "
            "re-run the solver with this prunegym version to get a checkable result"
        )
    if result.weights_sha256 != core.weights_sha256:
        options = result.task_options.get("checkpoint", "the shipped checkpoint")
        raise OtherWeights(
            f"incompatible checkpoint: the result was found on weights with sha256 "
            f"{result.weights_sha256[:16]}… ({options}), but task {result.task!r} now loads "
            f"weights with sha256 {core.weights_sha256[:16]}…; pass the checkpoint it used"
        )
    if len(result.coefficients) != len(core.groups):
        raise IncompatibleResult(
            f"the result has {len(result.coefficients)} coefficients, the task has "
            f"{len(core.groups)} pruning groups"
        )


def environment_for(result: Result, device: str | None = None, **task_overrides):
    """A fresh :class:`prunegym.PruneEnv` with the task, criterion, compensation, window and
    environment options ``result`` records, checked with :func:`check_compatible`.

    ``device`` is where to replay (any device: the result records where it was found);
    ``task_overrides`` replace recorded task options (e.g. another ``data_root``).
    Torch-Pruning results chose channels by Torch-Pruning's own ranking, so their coefficients
    cannot be replayed through the masks: re-run that (deterministic) solver instead, with
    :func:`rerun_solver`.
    """

    task = make_task(result.task, device=device, **{**result.task_options, **task_overrides})
    unknown = set(result.env_options) - set(inspect.signature(PruneEnv).parameters)
    if unknown:
        raise ValueError(f"the result's env_options name no PruneEnv option: {sorted(unknown)}")
    env = PruneEnv(
        task,
        target=result.target,
        tolerance=result.tolerance,
        criterion=result.criterion,
        compensation=result.compensation,
        **result.env_options,
    )
    check_compatible(result, env)
    return env


def rerun_solver(result: Result, env):
    """Run ``result``'s solver again with its recorded settings and seed on ``env`` (within the
    recorded evaluation count); returns ``(agent, new result)``."""

    agent = make_agent(result.solver, progress=False, seed=result.seed, **result.solver_settings)
    return agent, agent.run(env, max(result.evaluations, 1))
