"""Tasks: pretrained model + data + metric. Look tasks up by name with :func:`make_task`."""

from __future__ import annotations

from prunegym.tasks.base import Task

_TASKS = {
    "diffusion-sorption": "prunegym.tasks.diffusion_sorption:DiffusionSorptionTask",
    "mnist-ae": "prunegym.tasks.mnist_autoencoder:MNISTAutoencoderTask",
    "mnist-classifier": "prunegym.tasks.mnist_classifier:MNISTClassifierTask",
    "mnist-convnet": "prunegym.tasks.mnist_convnet:MNISTConvNetTask",
    "toy": "prunegym.tasks.toy:ToyTask",
    "tdmpc-pendulum": "prunegym.tasks.tdmpc_pendulum:TDMPCPendulumTask",
}


def task_names() -> list[str]:
    """Names accepted by :func:`make_task`."""
    return sorted(_TASKS)


def task_class(name: str) -> type[Task]:
    """The Task subclass registered under ``name`` (imported, not built)."""
    if name not in _TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(task_names())}")
    module_name, class_name = _TASKS[name].split(":")
    import importlib

    return getattr(importlib.import_module(module_name), class_name)


def make_task(name: str, **kwargs) -> Task:
    """Build a task by name, e.g. ``make_task("mnist-ae", data_root="~/data")``.

    Raises:
        ValueError: if ``name`` is not a known task; the message lists the valid ones.
    """
    cls = task_class(name)
    import inspect

    accepted = inspect.signature(cls.__init__).parameters
    unknown = [key for key in kwargs if key not in accepted]
    if unknown:
        valid = [key for key in accepted if key != "self"]
        raise ValueError(f"task {name!r} takes no option {unknown[0]!r}; its options: {valid}")
    return cls(**kwargs)


__all__ = ["Task", "make_task", "task_class", "task_names"]
