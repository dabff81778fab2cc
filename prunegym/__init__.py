"""prunegym: neural-network pruning as a control problem, as a Gymnasium environment.

Importing the package registers the environment ids:

- ``prunegym/MNISTAutoencoder-v0``: the MNIST autoencoder, scored by PSNR;
- ``prunegym/Toy-v0``: a tiny task that steps in milliseconds, for tests and examples;
- ``prunegym/TDMPCPendulum-v0``: the TD-MPC pixel-pendulum agent, scored by episode return;
- ``prunegym/PixelPendulum-v0``: the inner environment, Pendulum-v1 as stacked 28×28 frames;
- ``prunegym/MNISTClassifier-v0``: the elimination-compensation paper's PReLU MLP on MNIST,
  scored by test cross-entropy, weight granularity by default;
- ``prunegym/DiffusionSorption-v0``: its PDE regression MLP, scored by test MSE;
- ``prunegym/MNISTConvNet-v0``: a small BatchNorm CNN for network slimming, scored by accuracy;
- ``prunegym/Prune-v0``: any task, ``task=`` a name, a :func:`register_task` name or a
  ``module:attribute`` spec of your own Task (``task_options=`` its arguments);
- ``prunegym/PruneFeatures-v0``: the same with the per-group ``features`` observation (one
  step sets every coefficient);
- ``prunegym/PruneSequential-v0``: any task, one group per step (AMC style, the budget
  enforced by projecting each action unless ``hard_budget=False``).

Every PruneEnv id also has a vector entry point: ``gym.make_vec(id, num_envs=K,
vectorization_mode="vector_entry_point")`` gives a :class:`prunegym.envs.vector.PruneVectorEnv`
whose step evaluates the K candidates in one batch.
"""

from gymnasium.envs.registration import register

from prunegym.envs import PruneEnv, check_task
from prunegym.tasks import Task, make_task, register_task, task_names

__version__ = "0.1.0"

register(
    id="prunegym/MNISTAutoencoder-v0",
    entry_point="prunegym.envs.registration:mnist_autoencoder_env",
    vector_entry_point="prunegym.envs.registration:mnist_autoencoder_vector_env",
    max_episode_steps=50,
)
register(
    id="prunegym/Toy-v0",
    entry_point="prunegym.envs.registration:toy_env",
    vector_entry_point="prunegym.envs.registration:toy_vector_env",
    max_episode_steps=50,
)
register(
    id="prunegym/TDMPCPendulum-v0",
    entry_point="prunegym.envs.registration:tdmpc_pendulum_env",
    vector_entry_point="prunegym.envs.registration:tdmpc_pendulum_vector_env",
    max_episode_steps=50,
)
register(
    id="prunegym/MNISTClassifier-v0",
    entry_point="prunegym.envs.registration:mnist_classifier_env",
    vector_entry_point="prunegym.envs.registration:mnist_classifier_vector_env",
    max_episode_steps=50,
)
register(
    id="prunegym/DiffusionSorption-v0",
    entry_point="prunegym.envs.registration:diffusion_sorption_env",
    vector_entry_point="prunegym.envs.registration:diffusion_sorption_vector_env",
    max_episode_steps=50,
)
register(
    id="prunegym/ImageClassification-v0",
    entry_point="prunegym.envs.registration:image_classification_env",
    vector_entry_point="prunegym.envs.registration:image_classification_vector_env",
    max_episode_steps=50,
)
register(
    id="prunegym/MNISTConvNet-v0",
    entry_point="prunegym.envs.registration:mnist_convnet_env",
    vector_entry_point="prunegym.envs.registration:mnist_convnet_vector_env",
    max_episode_steps=50,
)
register(
    id="prunegym/Prune-v0",
    entry_point="prunegym.envs.registration:any_task_env",
    vector_entry_point="prunegym.envs.registration:any_task_vector_env",
    max_episode_steps=50,
)
register(
    id="prunegym/PruneFeatures-v0",
    entry_point="prunegym.envs.registration:features_env",
    max_episode_steps=50,
)
register(  # an episode ends after its last group by itself
    id="prunegym/PruneSequential-v0",
    entry_point="prunegym.envs.registration:sequential_env",
)
register(  # the time limit (200 simulator steps) sits inside, below the action repeat
    id="prunegym/PixelPendulum-v0",
    entry_point="prunegym.tasks.tdmpc.pendulum:make_pixel_pendulum",
)


__all__ = [
    "PruneEnv",
    "Task",
    "check_task",
    "make_task",
    "register_task",
    "task_names",
    "__version__",
]
