"""TensorBoard logging, SB3's convention: ``--tensorboard DIR``, one run per sub-directory."""

from __future__ import annotations

from pathlib import Path


def tensorboard_writer(directory: str | None):
    """A TensorBoard ``SummaryWriter`` for ``directory`` (``None``: no logging).

    Raises:
        ValueError: when TensorBoard is not installed or ``directory`` is a file, in one line.
    """
    if directory is None:
        return None
    if Path(directory).exists() and not Path(directory).is_dir():
        raise ValueError(f"--tensorboard {directory} is a file, not a folder")
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise ValueError(
            "--tensorboard needs TensorBoard: pip install 'prunegym[tensorboard]'"
        ) from error
    return SummaryWriter(str(directory))
