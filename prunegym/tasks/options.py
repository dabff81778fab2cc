"""Constructor options of tasks and solvers, checked against their annotations.

An object's settings are the named ``__init__`` parameters of its class and bases
(:func:`annotations_of`); a solver's recorded settings are those its instance stores under the
same name (:func:`stored_settings`). Where a parameter is annotated with plain kinds (``int``,
``float``, ``bool``, ``str``, optionally ``| None``), :func:`check_options` refuses a value of
another kind in one line: ``samples=1.5`` or ``NaN`` for an ``int``, ``penalty=NaN`` or
``"nan"`` for a ``float``, ``refine="no"`` for a ``bool``. Ranges stay with each ``__init__``
(:func:`check_at_least` for counts).
"""

from __future__ import annotations

import inspect
import math
import numbers
import types
import typing

import numpy as np

_PLAIN = {bool: "true or false", int: "an integer", float: "a finite number", str: "text"}


def annotations_of(cls: type) -> dict[str, object]:
    """Name → annotation of every named ``__init__`` parameter of ``cls`` and its bases, the
    most derived first; ``None`` where there is none or it does not resolve."""
    found: dict[str, object] = {}
    for base in cls.__mro__:
        init = vars(base).get("__init__")
        if init is None or base is object:
            continue
        try:
            hints = typing.get_type_hints(init)
        except Exception:  # a plugin's annotation that does not resolve: judge nothing
            hints = {}
        try:
            parameters = inspect.signature(init).parameters
        except (TypeError, ValueError):  # no signature (a class written in C)
            continue
        for name, parameter in parameters.items():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            if name != "self" and name not in found:
                found[name] = hints.get(name)
    return found


def stored_settings(agent) -> dict[str, object]:
    """The ``__init__`` parameters of ``agent``'s class and bases that the instance stores
    under the same name, with their stored values."""
    return {
        name: getattr(agent, name) for name in annotations_of(type(agent)) if hasattr(agent, name)
    }


def check_options(owner: str, options: dict, cls: type) -> None:
    """``ValueError`` naming ``owner`` (e.g. ``"solver 'random'"``) and the option when a value
    in ``options`` is not of the plain kind ``cls`` annotates it with (see the module doc)."""
    annotations = annotations_of(cls)
    for name, value in options.items():
        kinds = _plain_kinds(annotations.get(name))
        if kinds is None or (value is None and type(None) in kinds) or _fits(value, kinds):
            continue
        wanted = " or ".join(_PLAIN[k] for k in _PLAIN if k in kinds)
        if type(None) in kinds:
            wanted += " or null"
        raise ValueError(f"{owner} option {name}={value!r}: must be {wanted}")


def check_at_least(owner: str, low: int, **counts: int) -> None:
    """``ValueError`` naming the first of ``counts`` below ``low``."""
    for name, value in counts.items():
        if not value >= low:
            raise ValueError(f"{owner} option {name} must be >= {low}, got {value!r}")


def is_count(value, least: int) -> bool:
    """Whether ``value`` is an integer (not a bool, numpy integers included) of at least
    ``least``."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= least


def _plain_kinds(annotation) -> set | None:
    """The kinds an annotation allows when all are plain (or ``None``), else ``None``."""
    if annotation is None:
        return None
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    kinds = set(typing.get_args(annotation)) if union else {annotation}
    return kinds if kinds <= {*_PLAIN, type(None)} and kinds - {type(None)} else None


def _fits(value, kinds: set) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool in kinds
    if isinstance(value, numbers.Integral) and (int in kinds or float in kinds):
        return True
    if isinstance(value, numbers.Real) and float in kinds:
        return math.isfinite(value)
    return isinstance(value, str) and str in kinds
