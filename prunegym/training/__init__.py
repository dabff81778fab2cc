"""Training entry points: the shipped checkpoints' recipes (``prunegym train``) and
fine-tuning with fixed masks after pruning (:func:`finetune`)."""

from prunegym.tasks.fitting import finetune

__all__ = ["finetune"]
