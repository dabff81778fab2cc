"""Data loaders. Nothing here downloads anything."""

from prunegym.tasks.data.mnist import load_mnist_split

__all__ = ["load_mnist_split"]
