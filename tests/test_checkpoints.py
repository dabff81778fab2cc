"""Checkpoints: safe loading with one-line errors, and subnormal weights flushed to zero."""

import warnings
from importlib import resources

import pytest
import torch

from prunegym.cli.main import main
from prunegym.tasks.checkpoints import (
    CheckpointError,
    SubnormalWeightsWarning,
    flush_subnormals,
    safe_load,
)
from prunegym.tasks.mnist_autoencoder import MNISTAutoencoderTask
from prunegym.tasks.tdmpc_pendulum import load_world_model


def _broken_files(tmp_path):
    """Garbage files, a truncated checkpoint and one holding a pickled module."""
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all" * 4)
    text = tmp_path / "text.pt"  # torch's unpickler fails on it with a bare KeyError
    text.write_bytes(b"hello world")
    shipped = resources.files("prunegym.assets") / "mnist_classifier_32.pt"
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(shipped.read_bytes()[:3000])
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"state_dict": {}, "layer": torch.nn.Linear(2, 2)}, unsafe)
    return {
        garbage: "is not a PyTorch checkpoint",
        text: "is not a PyTorch checkpoint",
        truncated: "is truncated or corrupt",
        unsafe: r"holds a Python object \(torch.nn.modules.linear.Linear\)",
    }


def test_bad_checkpoints_name_the_file_and_the_problem_and_never_advise_unsafe_loading(
    tmp_path,
):
    for path, problem in _broken_files(tmp_path).items():
        for load in (
            safe_load,
            load_world_model,
            lambda p: MNISTAutoencoderTask(checkpoint=p).build_model(),
        ):
            with pytest.raises(CheckpointError, match=problem) as caught:
                load(path)
            message = str(caught.value)
            assert str(path) in message and "\n" not in message
            assert "weights_only" not in message and "trust" not in message
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*absent.pt"):
        safe_load(tmp_path / "absent.pt")


def test_the_cli_gives_one_line_for_a_corrupt_checkpoint(tmp_path, capsys):
    for path in _broken_files(tmp_path):
        assert main(["groups", "mnist-ae", "--checkpoint", str(path)]) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert len(err) == 1 and err[0].startswith(f"prunegym: error: checkpoint {path} ")
        assert "weights_only" not in err[0]


def test_subnormal_weights_are_flushed_with_one_warning_and_the_metric_unchanged(tmp_path):
    task = MNISTAutoencoderTask()
    clean = task.build_model()
    state = {name: tensor.clone() for name, tensor in clean.state_dict().items()}
    # Plant subnormals where the clean checkpoint has exact zeros and in a few tiny places.
    weight = state["encoder.0.weight"]
    weight.view(-1)[:500] = torch.tensor(1e-40)
    weight.view(-1)[500:510] = torch.tensor(-3e-39)
    planted = tmp_path / "subnormal.pt"
    torch.save({"state_dict": state, "config": {"hidden": (512, 256), "latent": 128}}, planted)
    as_stored = torch.load(planted, weights_only=True)["state_dict"]
    assert flush_subnormals({k: v.clone() for k, v in as_stored.items()}) == 510

    user_task = MNISTAutoencoderTask(checkpoint=planted)
    with pytest.warns(SubnormalWeightsWarning, match="510 subnormal weights") as record:
        model = user_task.build_model()
    assert len(record) == 1
    assert flush_subnormals({k: v.clone() for k, v in model.state_dict().items()}) == 0
    raw = MNISTAutoencoderTask().build_model()
    raw.load_state_dict(as_stored)  # the subnormals kept, bypassing prunegym's loader
    assert task.evaluate(model)["psnr"] == pytest.approx(task.evaluate(raw)["psnr"], abs=1e-6)
    assert torch.equal(as_stored["encoder.0.weight"].view(-1)[:1], torch.tensor([1e-40]))


ASSETS = [p.name for p in resources.files("prunegym.assets").iterdir() if p.name.endswith(".pt")]


def test_the_cli_warns_in_one_line(tmp_path, capsys):
    state = MNISTAutoencoderTask().build_model().state_dict()
    state["decoder.0.weight"].view(-1)[:7] = torch.tensor(1e-41)
    planted = tmp_path / "subnormal.pt"
    torch.save({"state_dict": state, "config": {}}, planted)
    assert main(["groups", "mnist-ae", "--checkpoint", str(planted)]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "subnormal" in line]
    assert warned == [
        f"prunegym: warning: checkpoint {planted}: 7 subnormal weights (|w| < 1.2e-38) set to "
        "zero; they change no metric but slow matrix products on some CPUs"
    ]


@pytest.mark.parametrize("asset", ASSETS)
def test_shipped_checkpoints_are_clean(asset):
    payload = torch.load(resources.files("prunegym.assets") / asset, weights_only=True)
    state = payload.get("state_dict", payload.get("model"))
    assert state and flush_subnormals(state) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", SubnormalWeightsWarning)
        MNISTAutoencoderTask().build_model()


def test_torch_load_warnings_show_only_when_the_load_works(tmp_path, monkeypatch):
    from prunegym.tasks import checkpoints

    def load(path, **kwargs):
        warnings.warn("a torch warning", FutureWarning, stacklevel=1)
        if "bad" in str(path):
            raise EOFError
        return {"ok": 1}

    monkeypatch.setattr(torch, "load", load)
    for name in ("good.pt", "bad.pt"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.warns(FutureWarning, match="a torch warning"):
        assert checkpoints.safe_load(tmp_path / "good.pt") == {"ok": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning here would fail the test
        with pytest.raises(checkpoints.CheckpointError, match="truncated or corrupt"):
            checkpoints.safe_load(tmp_path / "bad.pt")
