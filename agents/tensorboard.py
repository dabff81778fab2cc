"""TensorBoard logging, SB3's convention: ``--tensorboard DIR``, one run per sub-directory."""

from __future__ import annotations


def tensorboard_writer(directory: str | None):
    """A TensorBoard ``SummaryWriter`` for ``directory`` (``None``: no logging).

    Raises:
        ValueError: when TensorBoard is not installed, in one line.
    """
    if directory is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise ValueError(
            "--tensorboard needs TensorBoard: pip install 'prunegym[tensorboard]'"
        ) from error
    return SummaryWriter(str(directory))
