"""The image-classification task: torchvision models by name, local data in torchvision's
layouts (fake files written here), seeded disjoint subsets, and the environment's life cycle on
a real architecture."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from prunegym.cli.main import main
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks import make_task
from prunegym.tasks.data.images import load_image_split

SMALL = {"image_size": 32, "eval_images": 24, "calibration_images": 16, "batch_size": 8}


def _cifar_files(root, name="cifar10", count=30):
    batches = ["test_batch"] + [f"data_batch_{i}" for i in range(1, 6)]
    folder, files, key = {
        "cifar10": ("cifar-10-batches-py", batches, b"labels"),
        "cifar100": ("cifar-100-python", ["test", "train"], b"fine_labels"),
    }[name]
    (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index, file in enumerate(files):
        batch = {b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
                 key: [int(v) for v in (np.arange(count) + index) % 10]}  # fmt: skip
        with open(root / folder / file, "wb") as handle:
            pickle.dump(batch, handle)


def test_cifar_layout_gives_seeded_disjoint_normalised_subsets(tmp_path):
    _cifar_files(tmp_path)
    split = load_image_split("cifar10", tmp_path, eval_images=20, calibration_images=25)
    assert split.eval_images.shape == (20, 3, 32, 32) and split.num_classes == 10
    assert split.calibration_images.shape == (25, 3, 32, 32)
    pool = torch.cat([split.eval_images, split.calibration_images]).flatten(1)
    assert len(torch.unique(pool, dim=0)) == 45  # disjoint: no image twice
    assert -3 < float(pool.mean()) < 3 and split.eval_labels.dtype == torch.long
    again = load_image_split("cifar10", tmp_path, eval_images=20, calibration_images=25)
    assert torch.equal(again.eval_images, split.eval_images)  # seeded


def test_missing_or_corrupt_data_folders_say_what_layout_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py/test_batch.*torchvision"):
        load_image_split("cifar10", tmp_path, 4, 4)
    (tmp_path / "cifar-100-python").mkdir()
    (tmp_path / "cifar-100-python" / "test").write_bytes(b"not a pickle")
    with pytest.raises(FileNotFoundError, match="is not a cifar100 batch file"):
        load_image_split("cifar100", tmp_path, 4, 4)
    with pytest.raises(FileNotFoundError, match=r"<class>/<image>"):
        load_image_split("imagefolder", tmp_path / "nothing", 4, 4)
    with pytest.raises(ValueError, match="data_root"):
        load_image_split("cifar10", None, 4, 4)
    with pytest.raises(ValueError, match="fewer than eval_images"):
        _cifar_files(tmp_path / "small", count=2)
        load_image_split("cifar10", tmp_path / "small", 20, 20)
    with pytest.raises(ValueError, match="data must be one of"):
        load_image_split("svhn", tmp_path, 4, 4)


def test_image_folder_is_resized_and_cropped(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(5):
            pixels = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / label / f"{i}.png")
    split = load_image_split("imagefolder", tmp_path, 6, 4, image_size=24)
    assert split.eval_images.shape == (6, 3, 24, 24) and split.num_classes == 2
    assert set(split.eval_labels.tolist()) <= {0, 1}


def test_random_weights_need_fake_data_and_names_are_checked(tmp_path):
    with pytest.raises(ValueError, match="allowed only with data='fake'"):
        make_task("image-classification", data="cifar10", data_root=str(tmp_path))
    with pytest.raises(ValueError, match="unknown torchvision classification model 'resnet1'"):
        make_task("image-classification", model="resnet1")


def test_weights_file_loads_a_state_dict(tmp_path):
    task = make_task("image-classification", model="resnet18", **SMALL)
    model = task.build_model()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    loaded = make_task("image-classification", model="resnet18", weights=str(tmp_path / "w.pt"),
                       seed=1, **SMALL).build_model()  # fmt: skip
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_resnet18_steps_resets_bit_for_bit_and_exports_the_masked_model():
    task = make_task("image-classification", model="resnet18", **SMALL)
    env = PruneEnv(task, target=0.3)
    assert len(env.groups) > 10
    assert {"conv1", "layer1", "layer4", "fc"} <= {c for g in env.groups for c in g.components}
    dense = {k: v.clone() for k, v in env.model.state_dict().items()}
    coefficients = np.full(len(env.groups), 0.3)
    _, reward, _, _, info = env.step(coefficients)
    assert {"top1", "top5", "loss"} <= set(info) and 0 < info["sparsity"] < 0.6
    masked = env.model
    images = task.evaluation_batch[0]
    with torch.no_grad():
        expected = masked(images)
        exported = env.export(coefficients)
        got = exported(images)
    assert sum(p.numel() for p in exported.parameters()) < sum(v.numel() for v in dense.values())
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    env.reset()
    for key, value in env.model.state_dict().items():
        assert torch.equal(value, dense[key]), key


def test_solve_from_the_command_line_with_task_options(capsys):
    from prunegym.cli.main import main

    options = [f"--task-option={k}={v}" for k, v in {"model": "resnet18", "data": "fake",
                                                      **SMALL}.items()]  # fmt: skip
    assert main(["solve", "image-classification", *options, "--solver", "uniform",
                 "--target", "0.3", "--json"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert '"task": "image-classification"' in out and '"model": "resnet18"' in out


def test_the_readme_resnet18_fd_momentum_solve_runs_whole_on_the_cpu(capsys):
    argv = ["solve", "image-classification", "--task-option", "model=resnet18",
            "--task-option", "data=fake", "--target", "0.3"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "solver: fd-momentum" in out and "feasible     True" in out
    assert "MACs" in out and "11 layer4-fc 1" in out
