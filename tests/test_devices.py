"""Devices: names checked once with one-line errors, every pruning op device-clean (the factory
watch), precision, the throughput benchmark's quick CPU run. CUDA-only tests are marked ``cuda``
and run on a GPU machine (``pytest -m cuda``). The batched forward and the TD-MPC tensor
episodes have their own files."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from device_leaks import FactoryWatch

import prunegym  # noqa: F401  (registers the ids)
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks import make_task
from prunegym.tasks.devices import resolve_device

NO_CUDA = not torch.cuda.is_available()
cuda = pytest.mark.cuda


# -- device names ---------------------------------------------------------------------------------
def test_device_names_resolve_or_fail_with_one_line_naming_what_exists():
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device("auto").type == ("cpu" if NO_CUDA else "cuda")
    with pytest.raises(ValueError, match=r"unknown device 'gpu0'; use cpu, cuda, cuda:N or auto"):
        resolve_device("gpu0")
    with pytest.raises(ValueError, match=r"'meta' is not supported.*available here: cpu"):
        resolve_device("meta")
    with pytest.raises(ValueError, match=r"'cuda:99' (does not exist|needs CUDA)"):
        resolve_device("cuda:99")


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
def test_cuda_without_a_gpu_says_so_and_builds_nothing():
    task = make_task("toy")
    with pytest.raises(ValueError, match=r"needs CUDA, but this machine has no CUDA GPU"):
        PruneEnv(task, device="cuda")
    with pytest.raises(ValueError, match=r"no CUDA GPU.*available here: cpu"):
        make_task("toy", device="cuda:0")
    with pytest.raises(ValueError, match=r"no CUDA GPU"):
        gym.make("prunegym/Toy-v0", device="cuda")
    assert task.device == torch.device("cpu")


def test_device_and_precision_reach_the_env_from_every_entry_point():
    env = gym.make("prunegym/Toy-v0", device="cpu", precision="bf16").unwrapped
    assert env.device == torch.device("cpu") and env.options["precision"] == "bf16"
    assert isinstance(env.device_name, str) and env.device_name
    task = make_task("toy", device="cpu")
    assert task.device == torch.device("cpu")
    assert PruneEnv(task, device="cpu").task is task  # nothing to move: no copy
    with pytest.raises(ValueError, match="precision must be one of fp32, tf32, bf16"):
        PruneEnv("toy", precision="fp16")


def test_bf16_evaluations_run_and_stay_close_to_fp32():
    fp32 = PruneEnv("mnist-ae", cache=False)
    bf16 = PruneEnv("mnist-ae", cache=False, precision="bf16")
    rows = np.array([[0.0] * 5, [0.2] * 5, [0.4, 0.1, 0.3, 0.2, 0.0]])
    a = np.array([i["psnr"] for i in fp32.evaluate_batch(rows)])
    b = np.array([i["psnr"] for i in bf16.evaluate_batch(rows)])
    assert not np.array_equal(a, b)  # autocast is really on
    np.testing.assert_allclose(b, a, atol=0.5)  # dB


def test_fp32_switches_cuda_tf32_off_and_restores_the_settings():
    from prunegym.tasks.devices import precision_context

    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    before = conv.fp32_precision, matmul.fp32_precision
    cuda_device = torch.device("cuda", 0)  # only the flags: nothing runs on it
    with precision_context("fp32", cuda_device):
        assert (conv.fp32_precision, matmul.fp32_precision) == ("ieee", "ieee")
    with precision_context("tf32", cuda_device):
        assert (conv.fp32_precision, matmul.fp32_precision) == ("tf32", "tf32")
    assert (conv.fp32_precision, matmul.fp32_precision) == before


def test_bf16_sees_masks_written_between_forwards():
    env = PruneEnv("toy", precision="bf16", batching="sequential", cache=False)
    rows = np.random.default_rng(0).uniform(0.0, 0.6, (4, len(env.groups)))
    together = [i["mse"] for i in env.evaluate_batch(rows)]  # one autocast region
    apart = [env.evaluate_batch(row[None])[0]["mse"] for row in rows]
    assert together == apart


# -- every op on the model's device ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("toy", {"batching": "sliced"}),
        ("toy", {"criterion": "taylor", "compensation": "optimal"}),
        ("toy", {"criterion": "random", "compensation": "none"}),
        ("toy", {"granularity": "weight"}),
        ("toy", {"granularity": "weight", "criterion": "random", "compensation": "mean"}),
        ("mnist-convnet", {"batching": "batched"}),
        ("mnist-classifier", {"batching": "batched", "compensation": "optimal"}),
        ("diffusion-sorption", {"batching": "batched"}),
        ("tdmpc-pendulum", {"batching": "stacked"}),
        ("tdmpc-pendulum", {"batching": "batched", "episode_engine": "torch+table"}),
    ],
)
def test_no_tensor_is_made_without_naming_its_device(name, options):
    options = dict(options)
    task_options = {"episodes": 2, "test_episodes": 2} if name == "tdmpc-pendulum" else {}
    if "episode_engine" in options:
        task_options["episode_engine"] = options.pop("episode_engine")
    task = make_task(name, **task_options)
    watch = FactoryWatch()
    with watch:
        env = PruneEnv(task, **options)
        size = len(env.groups)
        env.step(np.full(size, 0.3))
        env.evaluate_batch(np.full((3, size), 0.1) + np.arange(3)[:, None] * 0.1)
        if task.test_episodes:
            env.test_evaluation(np.full(size, 0.2))
        env.reset()
        if env.granularity == "channel":
            env.export(np.full(size, 0.3))
    assert not watch.sites, f"tensors made on the default device at {sorted(watch.sites)}"


def test_the_factory_watch_reports_prunegym_code_that_names_no_device():
    from device_leaks import PACKAGE

    namespace = {"torch": torch}
    source = (
        "def made():\n    return torch.ones(2)\n"
        "def named():\n    return torch.ones(2, device='cpu')\n"
    )
    exec(compile(source, f"{PACKAGE}/pretend.py", "exec"), namespace)
    watch = FactoryWatch()
    with watch:
        namespace["named"]()
        torch.zeros(3)  # the test's own call: not prunegym's business
    assert not watch.sites
    with watch:
        namespace["made"]()
    assert watch.sites == {"pretend.py:2"}


# -- CUDA (run with: pytest -m cuda, on a GPU machine) ---------------------------------------------
@cuda
@pytest.mark.skipif(NO_CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", ["mnist-ae", "mnist-convnet", "mnist-classifier", "toy"])
def test_cuda_env_matches_the_cpu_and_restores_bit_for_bit(name):
    cpu = PruneEnv(name, cache=False)
    gpu = PruneEnv(name, device="cuda", cache=False)
    assert gpu.device.type == "cuda" and gpu.batch_strategy == "batched"
    assert next(gpu.model.parameters()).is_cuda
    dense = {k: v.clone() for k, v in gpu.model.state_dict().items()}
    rows = np.random.default_rng(0).uniform(0, 0.5, (16, len(cpu.groups)))
    a = np.array([i["metric"] for i in cpu.evaluate_batch(rows)])
    b = np.array([i["metric"] for i in gpu.evaluate_batch(rows)])
    np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-5)
    assert [i["sparsity"] for i in cpu.evaluate_batch(rows)] == [
        i["sparsity"] for i in gpu.evaluate_batch(rows)
    ]
    step = gpu.step(rows[3])[4]["metric"]
    assert step == pytest.approx(b[3], rel=1e-3, abs=1e-5)
    _ = gpu.model
    gpu.reset()
    for key, value in gpu.model.state_dict().items():
        assert torch.equal(value, dense[key]), key


@cuda
@pytest.mark.skipif(NO_CUDA, reason="needs a CUDA GPU")
def test_cuda_tdmpc_keeps_the_channels_the_cpu_keeps():
    """Calibration frames are replayed from the checkpoint's actions, not played on the
    device, so the GPU scores the CPU's frames (in IEEE float32) and orders channels alike."""
    from prunegym.tasks.tdmpc_pendulum import TDMPCPendulumTask

    cpu = PruneEnv(TDMPCPendulumTask(episodes=1, test_episodes=2), cache=False)
    gpu = PruneEnv(TDMPCPendulumTask(episodes=1, test_episodes=2), device="cuda", cache=False)
    frames = [batch[0] for batch in gpu.task.calibration_batches()]
    assert frames[0].is_cuda
    for here, there in zip(cpu.task.calibration_batches(), frames, strict=True):
        assert torch.equal(here[0], there.cpu())
    for here, there in zip(cpu.pruner.orders, gpu.pruner.orders, strict=True):
        assert torch.equal(here.cpu(), there.cpu())


@cuda
@pytest.mark.skipif(NO_CUDA, reason="needs a CUDA GPU")
def test_cuda_solve_from_the_command_line(tmp_path):
    from prunegym.agents import Result
    from prunegym.cli.main import main

    out = tmp_path / "run"
    assert main(["solve", "mnist-ae", "--device", "cuda", "--out", str(out), "--no-progress"]) == 0
    result = Result.load(out / "result.json")
    assert result.device.startswith("cuda") and result.device_name and result.feasible
    assert main(["validate", str(out / "result.json"), "--device", "cpu"]) == 0


def test_gpu_throughput_benchmark_runs_quick_on_the_cpu(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "benchmarks" / "gpu_throughput.py"
    out = tmp_path / "throughput.json"
    done = subprocess.run(
        [sys.executable, str(script), "--quick", "--device", "cpu", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert list(report["devices"]) == ["cpu"]
    ae = report["tasks"]["mnist-ae"]["cpu"]
    assert set(ae["candidates_per_s"]) == {"1", "16", "128"}
    assert all(rate > 0 for rate in ae["candidates_per_s"].values())
    assert ae["forward_s"] > 0 and ae["step_over_forward"] > 0
    assert {"grid (pre-filtered)", "fd-momentum", "random (512)"} == set(ae["solvers"])
    assert "## mnist-classifier" in done.stdout and "candidates/s at K=128" in done.stdout
