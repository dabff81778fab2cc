"""Tasks: pretrained model + data + metric. Look tasks up by name with :func:`make_task`.

Where tasks come from, in this order:

- the built-in tasks below;
- :func:`register_task` (``prunegym.register_task("mytask", MyTask)``) in the running process;
- the ``prunegym.tasks`` entry-point group of installed packages (``[project.entry-points.
  "prunegym.tasks"] mytask = "mypackage.tasks:MyTask"``), loaded on first lookup;
- a ``module:attribute`` spec (``make_task("mytask:MyTask")``, ``prunegym solve mytask:MyTask``),
  imported on the spot, as ``gym.make`` accepts ``module:Env-v0``.

A task is named by what built it (its registered name or its spec), so result files record
how to rebuild it (``prunegym validate``).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from importlib import metadata

from prunegym.tasks.base import Task

_BUILT_IN = {
    "diffusion-sorption": "prunegym.tasks.diffusion_sorption:DiffusionSorptionTask",
    "mnist-ae": "prunegym.tasks.mnist_autoencoder:MNISTAutoencoderTask",
    "mnist-classifier": "prunegym.tasks.mnist_classifier:MNISTClassifierTask",
    "mnist-convnet": "prunegym.tasks.mnist_convnet:MNISTConvNetTask",
    "toy": "prunegym.tasks.toy:ToyTask",
    "tdmpc-pendulum": "prunegym.tasks.tdmpc_pendulum:TDMPCPendulumTask",
}
_REGISTERED: dict[str, Callable[..., Task] | str] = {}
ENTRY_POINT_GROUP = "prunegym.tasks"


def register_task(name: str, factory: Callable[..., Task] | str) -> None:
    """Make ``name`` a task of :func:`make_task`, the CLI, ``bench`` and ``validate``.

    Args:
        name: The task's name (no ``:``).
        factory: A :class:`Task` subclass, a callable returning a Task, or a
            ``"module:attribute"`` string naming one. Its keyword arguments are the task's
            options.
    """
    if not name or ":" in name:
        raise ValueError(f"a task name must be non-empty and contain no ':', got {name!r}")
    if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
        raise ValueError(f"task factory must be callable or 'module:attribute', got {factory!r}")
    _REGISTERED[name] = factory


def _entry_points() -> dict[str, str]:
    return {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def task_names() -> list[str]:
    """Names accepted by :func:`make_task` (besides ``module:attribute`` specs)."""
    return sorted({*_BUILT_IN, *_entry_points(), *_REGISTERED})


def load_attribute(spec: str, what: str):
    """The object a ``"module:attribute"`` spec names, or ``ValueError`` saying why not.

    A module that is not importable otherwise is looked for in the current folder too (as
    ``python -m`` would), appended to ``sys.path`` so that it never shadows installed ones.
    """
    module_name, _, attribute = spec.partition(":")
    try:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as missing:
            here = os.getcwd()
            if missing.name != module_name.split(".")[0] or here in sys.path:
                raise
            sys.path.append(here)
            module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(
            f"{what} {spec!r}: cannot import module {module_name!r}: {error}"
        ) from None
    found = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise ValueError(f"{what} {spec!r}: module {module_name!r} has no {attribute!r}")
        found = getattr(found, part)
    return found


def task_factory(name: str) -> Callable[..., Task]:
    """The callable that builds task ``name`` (a Task subclass for the built-in ones)."""
    factory = _REGISTERED.get(name) or _BUILT_IN.get(name) or _entry_points().get(name)
    if factory is None and ":" in name:
        factory = name
    if factory is None:
        raise ValueError(
            f"unknown task {name!r}; valid tasks: {', '.join(task_names())} "
            "(or a 'module:attribute' spec of your own Task)"
        )
    if isinstance(factory, str):
        factory = load_attribute(factory, "task")
    if not callable(factory) or (isinstance(factory, type) and not issubclass(factory, Task)):
        raise ValueError(f"task {name!r} is not a Task class or factory: {factory!r}")
    return factory


def task_class(name: str) -> type[Task]:
    """The Task subclass registered under ``name`` (imported; built only when the factory is
    not a class)."""
    factory = task_factory(name)
    return factory if isinstance(factory, type) else type(make_task(name))


def make_task(name: str, **kwargs) -> Task:
    """Build a task by name or ``module:attribute`` spec, e.g.
    ``make_task("mnist-ae", data_root="~/data")`` or ``make_task("mytask:MyTask")``.

    Raises:
        ValueError: if ``name`` is not a known task, an option is unknown, or the factory does
            not return a Task; the message lists what is valid.
    """
    factory = task_factory(name)
    accepted = inspect.signature(factory).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
    unknown = [key for key in kwargs if key not in accepted and not takes_any]
    if unknown:
        valid = [key for key in accepted if key != "self"]
        raise ValueError(f"task {name!r} takes no option {unknown[0]!r}; its options: {valid}")
    task = factory(**kwargs)
    if not isinstance(task, Task):
        raise ValueError(f"task {name!r} built a {type(task).__name__}, not a prunegym.Task")
    task.name = name  # how to build it again (a registered name or a module:attribute spec)
    return task


__all__ = ["Task", "load_attribute", "make_task", "register_task", "task_class", "task_names"]
