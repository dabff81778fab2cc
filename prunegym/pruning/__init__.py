"""Pruning core: groups, importance, statistics, compensation, masks and sparsity."""

from prunegym.pruning.channel.compensation import COMPENSATIONS
from prunegym.pruning.channel.groups import PruningGroup, UnsupportedLayerError, find_groups
from prunegym.pruning.channel.importance import CRITERIA
from prunegym.pruning.channel.pruner import MAX_COEFFICIENT, SoftPruner

__all__ = [
    "COMPENSATIONS",
    "CRITERIA",
    "MAX_COEFFICIENT",
    "PruningGroup",
    "SoftPruner",
    "UnsupportedLayerError",
    "find_groups",
]
