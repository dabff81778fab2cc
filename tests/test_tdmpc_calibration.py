"""TD-MPC calibration: actions recorded in the checkpoint, frames replayed from them, so the
same coefficients prune the same network on any CPU."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from other_cpu import OTHER_CPU

from prunegym.tasks.checkpoints import CheckpointError
from prunegym.tasks.tdmpc.calibration import (
    play_calibration,
    record_calibration_actions,
    replay_calibration,
)
from prunegym.tasks.tdmpc_pendulum import TDMPCPendulumTask, default_checkpoint, read_checkpoint

CPU = torch.device("cpu")
PRUNED = """
import sys, numpy as np, torch
from prunegym import PruneEnv
from prunegym.tasks.tdmpc_pendulum import TDMPCPendulumTask
env = PruneEnv(TDMPCPendulumTask(episodes=1, test_episodes=2), cache=False)
env.step(np.full(len(env.groups), 0.5, dtype=np.float32))
torch.save({"orders": env.pruner.orders, "weights": env.model.state_dict()}, sys.argv[1])
"""


def test_replaying_recorded_actions_gives_the_closed_loop_frames():
    model, _ = read_checkpoint()
    config = model.config.env
    frames, actions = play_calibration(model, config, 2)
    table = record_calibration_actions(model, config, 2)
    assert table.shape == (2, 100) and table.dtype == torch.float32
    assert torch.equal(table.T.reshape(-1, 1), actions)  # one decision of each episode in turn
    replayed_frames, replayed_actions = replay_calibration(table, config, CPU)
    assert replayed_frames.dtype == torch.uint8 and replayed_frames.shape == frames.shape
    assert torch.equal(replayed_frames, frames) and torch.equal(replayed_actions, actions)


def test_the_shipped_checkpoint_records_the_calibration_the_task_replays():
    _, recorded = read_checkpoint()
    assert recorded.shape == (4, 100) and float(recorded.abs().max()) <= 1.0
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*closed loop")  # replayed, not played
        task = TDMPCPendulumTask(episodes=1, test_episodes=2, calibration_episodes=3)
    batches = task.calibration_batches()
    frames, actions = (torch.cat(part) for part in zip(*batches, strict=True))
    expected = replay_calibration(recorded[:3], task.config.env, CPU)
    assert torch.equal(frames, expected[0]) and torch.equal(actions, expected[1])


def test_a_checkpoint_without_enough_recorded_episodes_plays_them_with_a_warning(tmp_path):
    state = torch.load(default_checkpoint(), weights_only=True)
    del state["calibration_actions"]
    torch.save(state, tmp_path / "old.pt")
    warning = r"old.pt records 0 calibration episodes, fewer than calibration_episodes=1; play"
    with pytest.warns(UserWarning, match=warning) as caught:
        task = TDMPCPendulumTask(tmp_path / "old.pt", episodes=1, test_episodes=2,
                                 calibration_episodes=1)  # fmt: skip
    assert caught[0].filename == __file__  # it points at the caller's line, not at prunegym
    frames, actions = task.calibration_batches()[0]
    expected = play_calibration(task.build_model(), task.config.env, 1)
    assert torch.equal(frames, expected[0]) and torch.equal(actions, expected[1])
    with pytest.warns(UserWarning, match="records 4 calibration episodes, fewer than"):
        TDMPCPendulumTask(episodes=1, test_episodes=2, calibration_episodes=5)


def test_add_calibration_actions_records_them_in_an_old_checkpoint(tmp_path):
    from prunegym.training.tdmpc import add_calibration_actions

    state = torch.load(default_checkpoint(), weights_only=True)
    del state["calibration_actions"]
    torch.save(state, tmp_path / "old.pt")
    model, _ = read_checkpoint(tmp_path / "old.pt")
    added = add_calibration_actions(tmp_path / "old.pt", episodes=2)
    again, recorded = read_checkpoint(tmp_path / "old.pt")
    assert torch.equal(recorded, added) and added.shape == (2, 100)
    assert torch.equal(added, record_calibration_actions(model, model.config.env, 2))
    for name, weight in model.state_dict().items():
        assert torch.equal(weight, again.state_dict()[name])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.pt"]  # no partial file left


@pytest.mark.parametrize(
    ("bad", "reason"),
    [(torch.zeros(4, 99), "got shape (4, 99)"), (torch.zeros(0, 100), "got shape (0, 100)"),
     (torch.full((2, 100), float("nan")), "NaN or outside [-1, 1]"),
     (torch.full((1, 100), 1.5), "NaN or outside [-1, 1]"),
     (torch.zeros(4, 100, dtype=torch.int64), "got torch.int64"), ([0.0] * 100, "got a list")],
)  # fmt: skip
def test_bad_recorded_calibration_actions_get_one_clear_line(tmp_path, bad, reason):
    state = torch.load(default_checkpoint(), weights_only=True)
    state["calibration_actions"] = bad
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(
        CheckpointError, match=r"'calibration_actions' must be a float tensor "
    ) as e:
        read_checkpoint(tmp_path / "bad.pt")
    assert "bad.pt" in str(e.value) and "\n" not in str(e.value)
    assert str(e.value).endswith(reason)


def test_the_same_coefficients_prune_the_same_network_on_another_cpu(tmp_path):
    """Closed-loop calibration episodes part ways under other float kernels, and with them
    every channel score; replayed ones give the same channel orders and the same masked,
    compensated weights to float rounding."""
    pruned = {}
    for name, kernels in {"here": {}, "other": OTHER_CPU}.items():
        env = {**os.environ, **kernels, "PYTHONWARNINGS": "ignore"}
        out = tmp_path / f"{name}.pt"
        run = subprocess.run([sys.executable, "-c", PRUNED, str(out)], env=env,
                             capture_output=True, text=True, timeout=600)  # fmt: skip
        assert run.returncode == 0, run.stderr[-2000:]
        pruned[name] = torch.load(out, weights_only=True)
    here, other = pruned["here"], pruned["other"]
    assert len(here["orders"]) == 15
    for order, twin in zip(here["orders"], other["orders"], strict=True):
        assert torch.equal(order, twin)
    for name, weight in here["weights"].items():
        np.testing.assert_allclose(weight, other["weights"][name], rtol=1e-4, atol=1e-6)
