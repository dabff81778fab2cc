"""TensorBoard logging, SB3's convention: ``--tensorboard DIR`` writes each run to its own
sub-directory ``DIR/<name>_<n>``, ``n`` one more than the largest already there."""

from __future__ import annotations

import os
from pathlib import Path

from prunegym.agents.specs import spec_folder_name


def run_directory(directory: str | Path, name: str) -> Path:
    """``directory/<name>_<n>`` for the next run: ``n`` is 1 + the largest ``n`` of the
    entries ``<name>_<n>`` already in ``directory`` (1 in a new one; a file counts too, so the
    run never lands on one). ``name`` is a solver spec, written as one folder name
    (:func:`~prunegym.agents.specs.spec_folder_name`)."""
    name, taken = spec_folder_name(name), [0]
    for path in Path(directory).glob("*_*"):
        stem, _, number = path.name.rpartition("_")
        if stem == name and number.isdigit():
            taken.append(int(number))
    return Path(directory) / f"{name}_{max(taken) + 1}"


def check_tensorboard(directory: str | Path) -> type:
    """TensorBoard's ``SummaryWriter`` class, once ``directory`` is known to be usable;
    writes nothing.

    Raises:
        ValueError: when TensorBoard is not installed, or ``directory`` cannot be made or
            written in (it, or the nearest of its parents that exists, is a file or is not
            writable), in one line.
    """
    path = Path(directory)
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"--tensorboard {directory}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--tensorboard {directory}: {existing} is not writable")
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise ValueError(
            "--tensorboard needs TensorBoard: pip install 'prunegym[tensorboard]'"
        ) from error
    return SummaryWriter


def tensorboard_writer(directory: str | Path | None, name: str):
    """A TensorBoard ``SummaryWriter`` for the next run of ``name`` under ``directory``
    (:func:`run_directory`; ``None``: no logging). Raises as :func:`check_tensorboard`."""
    if directory is None:
        return None
    return check_tensorboard(directory)(str(run_directory(directory, name)))
