"""The ``prunegym`` command: one module per command group (solve/validate/export in
:mod:`~prunegym.cli.main` and :mod:`~prunegym.cli.results`, ``bench``, ``train``)."""

from prunegym.cli.main import main

__all__ = ["main"]
