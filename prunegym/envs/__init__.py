"""The Gymnasium layer: :class:`PruneEnv` (one pruning problem), :class:`PruneVectorEnv` (K
candidates per step), the registered ids and the evaluation path behind every step."""

from prunegym.envs.check import check_task
from prunegym.envs.prune_env import PruneEnv
from prunegym.envs.vector import PruneVectorEnv

__all__ = ["PruneEnv", "PruneVectorEnv", "check_task"]
