"""Solver specs with settings: ``"learned-policy:refine=50"`` is the solver ``learned-policy``
with the option ``refine=50``, wherever a solver name is accepted (``make_agent``, ``prunegym
solve --solver``, ``prunegym bench --solvers``).

A spec is ``NAME[:key=value[,key=value...]]``; ``NAME`` may itself be a ``module:attribute``
spec (an attribute never contains ``=``, so the two cannot be confused). Values are read as
JSON where they parse (numbers, ``true``/``false``, lists), otherwise as text.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

_KEY = r"[A-Za-z_][\w-]*"
_SPEC = re.compile(rf"(?P<name>.+?):(?P<settings>{_KEY}=.*)", re.DOTALL)
_NEXT_SETTING = re.compile(rf",(?={_KEY}=)")  # a comma that starts the next key=value


def parse_setting(text: str) -> tuple[str, object]:
    """``"key=value"`` → ``(key, value)``: dashes in the key become underscores, the value is
    JSON where it parses, otherwise text. ``ValueError`` without ``=``."""
    if "=" not in text:
        raise ValueError(f"a setting must look like key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip().replace("-", "_"), json.loads(value)
    except json.JSONDecodeError:
        return key.strip().replace("-", "_"), value


def split_solver_spec(spec: str) -> tuple[str, dict[str, object]]:
    """``"learned-policy:refine=50,search=local"`` → ``("learned-policy", {"refine": 50,
    "search": "local"})``; a spec without settings comes back with ``{}``. ``ValueError`` for
    a key set twice."""
    match = _SPEC.fullmatch(spec)
    if match is None:
        return spec, {}
    settings: dict[str, object] = {}
    for item in _NEXT_SETTING.split(match["settings"]):
        key, value = parse_setting(item)
        if key in settings:
            raise ValueError(f"solver spec {spec!r} sets {key!r} twice")
        settings[key] = value
    return match["name"], settings


def split_solver_list(text: str) -> list[str]:
    """A comma-separated list of solver specs, e.g. ``"random,learned-policy:refine=50,
    search=local"`` → ``["random", "learned-policy:refine=50,search=local"]``: an item that is
    only ``key=value`` belongs to the spec before it."""
    specs: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if specs and re.fullmatch(rf"{_KEY}=.*", item) and _SPEC.fullmatch(specs[-1]):
            specs[-1] += f",{item}"
        elif item:
            specs.append(item)
    return specs


def spec_folder_name(spec: str) -> str:
    """``spec`` as one file-name component: characters other than letters, digits and
    ``=,:+-._`` are %-quoted, so a path among its settings (``policy=../p.pt``) is a name, never
    a way out of the folder it is written in."""
    return quote(spec, safe="=,:+-._")
