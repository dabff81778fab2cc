"""The error every part of channel pruning raises for a layer it cannot handle."""


class UnsupportedLayerError(ValueError):
    """A layer in a pruning group has parameters prunegym does not know how to mask."""
