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
import warnings
from collections.abc import Callable
from importlib import metadata

from prunegym.tasks.base import Task
from prunegym.tasks.devices import resolve_device
from prunegym.tasks.options import check_options

_BUILT_IN = {
    "diffusion-sorption": "prunegym.tasks.diffusion_sorption:DiffusionSorptionTask",
    "image-classification": "prunegym.tasks.image_classification:ImageClassificationTask",
    "mnist-ae": "prunegym.tasks.mnist_autoencoder:MNISTAutoencoderTask",
    "mnist-classifier": "prunegym.tasks.mnist_classifier:MNISTClassifierTask",
    "mnist-convnet": "prunegym.tasks.mnist_convnet:MNISTConvNetTask",
    "toy": "prunegym.tasks.toy:ToyTask",
    "zoo": "prunegym.tasks.zoo:ZooTask",
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
    check_plugin("task", name, factory)
    warn_if_replaced("task", name, factory, _REGISTERED, _BUILT_IN, ENTRY_POINT_GROUP)
    _REGISTERED[name] = factory


def check_plugin(kind: str, name: str, factory) -> None:
    """``ValueError`` unless ``name`` is a plugin name (non-empty, no ``:``) and ``factory`` is
    callable or a ``"module:attribute"`` string; ``kind`` is ``"task"`` or ``"solver"``."""
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"a {kind} name must be non-empty and contain no ':', got {name!r}")
    if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
        raise ValueError(f"{kind} factory must be callable or 'module:attribute', got {factory!r}")


def warn_if_replaced(
    kind: str, name: str, factory, registered: dict, built_in, installed: str
) -> None:
    """Warn (as ``gym.register`` does for an existing id) when registering ``name`` replaces a
    built-in ``kind``, one of the ``installed`` entry-point group, or another factory
    registered in this process under that name."""
    if name in built_in or name in entry_point_specs(installed):
        where = "built-in" if name in built_in else "installed"
        warnings.warn(
            f"register_{'agent' if kind == 'solver' else kind}({name!r}, ...) replaces the "
            f"{where} {kind} {name!r} in this process; result files name it {name!r}, so "
            f"other processes rebuild the {where} one",
            stacklevel=3,
        )
    elif registered.get(name, factory) != factory:
        warnings.warn(
            f"{kind} {name!r} was registered before; the new factory replaces it", stacklevel=3
        )


def entry_point_specs(group: str) -> dict[str, str]:
    """``{name: "module:attribute"}`` of the installed packages' entry points in ``group``."""
    return {ep.name: ep.value for ep in metadata.entry_points(group=group)}


def task_names() -> list[str]:
    """Names accepted by :func:`make_task` (besides ``module:attribute`` specs)."""
    return sorted({*_BUILT_IN, *entry_point_specs(ENTRY_POINT_GROUP), *_REGISTERED})


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
    found = _REGISTERED.get(name) or _BUILT_IN.get(name)
    found = found or entry_point_specs(ENTRY_POINT_GROUP).get(name)
    return plugin_factory("task", name, found, Task, task_names())


def plugin_factory(kind: str, name: str, found, base: type, valid: list[str]):
    """The factory of ``kind`` (``"task"``, ``"solver"``) ``name``: ``found`` (a callable or
    a ``module:attribute`` string from a registry; ``None`` if no registry knows ``name``, which
    is then tried as a spec), checked to be callable and, if a class, a subclass of ``base``."""
    if found is None and ":" in name:
        found = name
    if found is None:
        raise ValueError(
            f"unknown {kind} {name!r}; choose one of {', '.join(valid)} "
            f"(or a 'module:attribute' spec of your own {base.__name__})"
        )
    if isinstance(found, str):
        found = load_attribute(found, kind)
    if not callable(found) or (isinstance(found, type) and not issubclass(found, base)):
        raise ValueError(f"{kind} {name!r} is not a prunegym {base.__name__}: {found!r}")
    return found


def task_class(name: str) -> type[Task]:
    """The Task subclass registered under ``name`` (imported; built only when the factory is
    not a class)."""
    factory = task_factory(name)
    return factory if isinstance(factory, type) else type(make_task(name))


def make_task(name: str, device: str | None = None, **kwargs) -> Task:
    """Build a task by name or ``module:attribute`` spec, e.g.
    ``make_task("mnist-ae", data_root="~/data")`` or ``make_task("mytask:MyTask")``, with its
    data on ``device`` (``cpu`` when ``None``; ``cuda``, ``cuda:N``, ``auto``: see
    :meth:`Task.to`).

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
    if isinstance(factory, type):
        check_options(f"task {name!r}", kwargs, factory)
    resolve_device(device)  # an unavailable device fails before the task loads anything
    task = factory(**kwargs)
    if not isinstance(task, Task):
        raise ValueError(f"task {name!r} built a {type(task).__name__}, not a prunegym.Task")
    task.name = name  # how to build it again (a registered name or a module:attribute spec)
    return task.to(device) if device is not None else task


__all__ = [
    "Task", "check_plugin", "entry_point_specs", "load_attribute", "make_task", "plugin_factory",
    "register_task", "task_class", "task_names", "warn_if_replaced",
]  # fmt: skip
