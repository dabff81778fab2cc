"""Pruning core: groups, importance, statistics, compensation, masks and sparsity."""

from prunegym.pruning.compensation import COMPENSATIONS
from prunegym.pruning.groups import PruningGroup, UnsupportedLayerError, find_groups
from prunegym.pruning.importance import CRITERIA
from prunegym.pruning.soft_pruner import MAX_COEFFICIENT, SoftPruner

__all__ = [
    "COMPENSATIONS",
    "CRITERIA",
    "MAX_COEFFICIENT",
    "PruningGroup",
    "SoftPruner",
    "UnsupportedLayerError",
    "find_groups",
]
