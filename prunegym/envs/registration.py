"""Entry points of the registered environment ids: ``gym.make`` (one :class:`PruneEnv`) and
``gym.make_vec(..., vectorization_mode="vector_entry_point")`` (a :class:`PruneVectorEnv`)."""

from __future__ import annotations

from gymnasium.vector import AutoresetMode

from prunegym.envs.prune_env import PruneEnv
from prunegym.envs.sequential import SequentialPruneEnv, check_hard_budget
from prunegym.envs.vector import PruneVectorEnv, check_vector_observation
from prunegym.tasks import Task, make_task


def _task(task: str | Task, task_kwargs: dict | None, device: str | None) -> Task:
    """``task`` built by name with ``task_kwargs``, or a built :class:`Task` as it is."""
    if not isinstance(task, Task):
        return make_task(task, device=device, **(task_kwargs or {}))
    if task_kwargs:
        raise ValueError("task_options apply to a task given by name, not to a built Task")
    return task


def make_task_env(task_name: str | Task, task_kwargs: dict | None = None, **env_kwargs) -> PruneEnv:
    """Build a :class:`PruneEnv` for a task, named or built (the registered ids' entry point)."""
    return PruneEnv(_task(task_name, task_kwargs, env_kwargs.get("device")), **env_kwargs)


def any_task_env(
    task: str | Task = "toy", task_options: dict | None = None, **env_kwargs
) -> PruneEnv:
    """Entry point of ``prunegym/Prune-v0``: any task by name, registered name or
    ``module:attribute`` spec, e.g. ``gym.make("prunegym/Prune-v0", task="mytask:MyTask",
    task_options={...}, target=0.3)``."""
    return make_task_env(task, task_options, **env_kwargs)


def features_env(
    task: str | Task = "toy", task_options: dict | None = None, **env_kwargs
) -> PruneEnv:
    """Entry point of ``prunegym/PruneFeatures-v0``: any task, the whole coefficient vector in
    one step, observed as per-group features (``observation="features"``)."""
    if env_kwargs.pop("observation", "features") != "features":
        raise ValueError("prunegym/PruneFeatures-v0 observes features; for coefficients use "
                         "prunegym/Prune-v0")  # fmt: skip
    return make_task_env(task, task_options, observation="features", **env_kwargs)


def sequential_env(
    task: str | Task = "toy",
    task_options: dict | None = None,
    hard_budget: bool = True,
    **env_kwargs,
) -> SequentialPruneEnv:
    """Entry point of ``prunegym/PruneSequential-v0``: any task, one group per step."""
    check_hard_budget(hard_budget)  # before the task is built
    built = _task(task, task_options, env_kwargs.get("device"))
    return SequentialPruneEnv(built, hard_budget=hard_budget, **env_kwargs)


def mnist_autoencoder_env(data_root=None, checkpoint=None, **env_kwargs) -> PruneEnv:
    """Entry point of ``prunegym/MNISTAutoencoder-v0``."""
    return make_task_env(
        "mnist-ae", {"data_root": data_root, "checkpoint": checkpoint}, **env_kwargs
    )


def toy_env(**env_kwargs) -> PruneEnv:
    """Entry point of ``prunegym/Toy-v0`` (a milliseconds-per-step test task)."""
    return make_task_env("toy", **env_kwargs)


def tdmpc_pendulum_env(
    checkpoint=None, episodes=8, mode="policy", test_episodes=100, **env_kwargs
) -> PruneEnv:
    """Entry point of ``prunegym/TDMPCPendulum-v0``."""
    task_kwargs = {
        "checkpoint": checkpoint, "episodes": episodes, "mode": mode,
        "test_episodes": test_episodes,
    }  # fmt: skip
    return make_task_env("tdmpc-pendulum", task_kwargs, **env_kwargs)


def mnist_classifier_env(hidden=64, checkpoint=None, granularity="weight", **env_kwargs):
    """Entry point of ``prunegym/MNISTClassifier-v0`` (weight granularity by default)."""
    task_kwargs = {"hidden": hidden, "checkpoint": checkpoint}
    return make_task_env("mnist-classifier", task_kwargs, granularity=granularity, **env_kwargs)


def diffusion_sorption_env(architecture=1, noise=0.0, granularity="weight", **env_kwargs):
    """Entry point of ``prunegym/DiffusionSorption-v0`` (weight granularity by default)."""
    task_kwargs = {"architecture": architecture, "noise": noise}
    return make_task_env("diffusion-sorption", task_kwargs, granularity=granularity, **env_kwargs)


def image_classification_env(model="resnet18", data="fake", task_kwargs=None, **env_kwargs):
    """``PruneEnv`` of the image-classification task (``task_kwargs``: its other options)."""
    options = {"model": model, "data": data, **(task_kwargs or {})}
    return make_task_env("image-classification", options, **env_kwargs)


def mnist_convnet_env(checkpoint=None, **env_kwargs):
    """Entry point of ``prunegym/MNISTConvNet-v0`` (channel granularity)."""
    return make_task_env("mnist-convnet", {"checkpoint": checkpoint}, **env_kwargs)


def make_vector_env(
    task_name: str,
    num_envs: int,
    task_kwargs: dict | None = None,
    max_episode_steps: int | None = 50,
    autoreset_mode: AutoresetMode = AutoresetMode.NEXT_STEP,
    **env_kwargs,
) -> PruneVectorEnv:
    """A :class:`PruneVectorEnv` of K copies for a named task."""
    check_vector_observation(env_kwargs.get("observation", "coefficients"))  # before building
    env = make_task_env(task_name, task_kwargs, **env_kwargs)
    return PruneVectorEnv(env, num_envs, max_episode_steps, autoreset_mode)


def _vector_entry(name: str):
    def make(
        num_envs: int = 1,
        max_episode_steps: int | None = 50,
        autoreset_mode: AutoresetMode = AutoresetMode.NEXT_STEP,
        **kwargs,
    ) -> PruneVectorEnv:
        check_vector_observation(kwargs.get("observation", "coefficients"))  # before building
        env = globals()[name](**kwargs)
        return PruneVectorEnv(env, num_envs, max_episode_steps, autoreset_mode)

    make.__doc__ = f"Vector entry point of the id whose entry point is ``{name}``."
    return make


# The registered ids' vector_entry_point (gym.make_vec(..., vectorization_mode=...)).
any_task_vector_env = _vector_entry("any_task_env")
mnist_autoencoder_vector_env = _vector_entry("mnist_autoencoder_env")
toy_vector_env = _vector_entry("toy_env")
tdmpc_pendulum_vector_env = _vector_entry("tdmpc_pendulum_env")
mnist_classifier_vector_env = _vector_entry("mnist_classifier_env")
diffusion_sorption_vector_env = _vector_entry("diffusion_sorption_env")
image_classification_vector_env = _vector_entry("image_classification_env")
mnist_convnet_vector_env = _vector_entry("mnist_convnet_env")
