"""prunegym: neural-network pruning as a control problem, as a Gymnasium environment.

Importing the package registers the environment ids:

- ``prunegym/MNISTAutoencoder-v0``: the MNIST autoencoder, scored by PSNR;
- ``prunegym/Toy-v0``: a tiny task that steps in milliseconds, for tests and examples.
"""

from gymnasium.envs.registration import register

from prunegym.tasks import Task, make_task, task_names

__version__ = "0.1.0"

register(
    id="prunegym/MNISTAutoencoder-v0",
    entry_point="prunegym.env:mnist_autoencoder_env",
    max_episode_steps=50,
)
register(id="prunegym/Toy-v0", entry_point="prunegym.env:toy_env", max_episode_steps=50)


def __getattr__(name: str):
    if name == "PruneEnv":  # imported lazily: it pulls in torch-pruning
        from prunegym.env import PruneEnv

        return PruneEnv
    raise AttributeError(f"module 'prunegym' has no attribute {name!r}")


__all__ = ["PruneEnv", "Task", "make_task", "task_names", "__version__"]
