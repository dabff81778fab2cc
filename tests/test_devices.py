"""Devices and batched candidates: device names checked once, every pruning op device-clean,
one forward for K candidates (Linear chains, convolutions, BatchNorm, residual additions), the
memory budget, precision, and the TD-MPC episodes as tensors. CUDA-only tests are marked
``cuda`` and run on a GPU machine (``pytest -m cuda``)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from device_leaks import FactoryWatch
from torch import nn

import prunegym  # noqa: F401  (registers the ids)
from prunegym.envs import check_task
from prunegym.envs.prune_env import PruneEnv
from prunegym.tasks import make_task
from prunegym.tasks.base import Task
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


# -- one forward for K candidates -----------------------------------------------------------------
class ResidualBlockNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.ModuleDict({
            "stem": nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
            "body": nn.Sequential(
                nn.Conv2d(8, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8),
            ),
        })  # fmt: skip
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * 6 * 6, 16), nn.PReLU(16),
                                  nn.Linear(16, 3))  # fmt: skip

    def forward(self, x):
        x = self.features["stem"](x)
        x = torch.relu(x + self.features["body"](x))  # couples the stem's and body's outputs
        return self.head(nn.functional.avg_pool2d(x, 2))


class ResidualTask(Task):
    """Tiny residual CNN with BatchNorm (random weights, trained statistics) on random images."""

    name = "residual"
    metric = "mse"
    higher_is_better = False

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randn(40, 1, 12, 12, generator=generator)
        self.calibration = torch.randn(64, 1, 12, 12, generator=generator)
        self.reference = self.build_model()(self.images).detach()

    def build_model(self):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1)
            model = ResidualBlockNet()
            model.train()
            with torch.no_grad():  # BatchNorm statistics that are not the identity
                for _ in range(3):
                    model(torch.randn(32, 1, 12, 12) * 2 + 0.5)
        return model.eval()

    def components(self, model):
        return {"features": model.features, "head": model.head}

    @property
    def example_inputs(self):
        return self.images[:2]

    def calibration_batches(self):
        return self.calibration.split(32)

    @torch.no_grad()
    def evaluate(self, model):
        return self.metrics_of_outputs(model(self.images))

    @property
    def evaluation_batch(self):
        return self.images

    def metrics_of_outputs(self, outputs):
        return {"mse": float((outputs - self.reference).pow(2).mean())}


def test_batched_forward_handles_batchnorm_prelu_and_residual_additions():
    report = check_task(ResidualTask(), candidates=6, compensation="mean")
    assert report["batched_paths"] == ["batched"]
    assert report["largest_relative_difference"] < 1e-4
    env = PruneEnv(ResidualTask(), batching="batched", cache=False)
    assert len(env.groups) >= 3  # stem+body coupled by the residual, body inner, head
    rows = np.random.default_rng(1).uniform(0, 0.7, (9, len(env.groups)))
    batched = [i["mse"] for i in env.evaluate_batch(rows)]
    sequential = [env.step(row)[4]["mse"] for row in rows]
    np.testing.assert_allclose(batched, sequential, rtol=1e-4, atol=1e-7)
    assert max(batched) > 0  # the candidates really are pruned


class Quirky(nn.Module):
    """A small MLP whose forward breaks the batched forward's assumptions in one way."""

    def __init__(self, quirk: str) -> None:
        super().__init__()
        self.quirk = quirk
        self.body = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 8), nn.ReLU())
        self.norm = nn.BatchNorm1d(8, track_running_stats=quirk != "batch-statistics")
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        x = self.body(x)
        if self.quirk == "mixes-rows":
            x = x - x.mean(0)  # a statistic over the batch: candidates would see each other
        x = self.norm(x)
        if self.quirk == "functional" and len(x) % 30 == 0:  # on the evaluation batch only
            return nn.functional.linear(x, self.out.weight, self.out.bias)  # outside its forward
        return self.out(x)


class QuirkyTask(Task):
    name = "quirky"
    metric = "mse"
    higher_is_better = False

    def __init__(self, quirk: str) -> None:
        self.quirk = quirk
        generator = torch.Generator().manual_seed(0)
        self.inputs = torch.randn(30, 6, generator=generator)
        self.reference = self.build_model()(self.inputs).detach()

    def build_model(self):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return Quirky(self.quirk).eval()

    def components(self, model):
        return {"mlp": model}

    @property
    def example_inputs(self):
        return self.inputs[:4]

    def calibration_batches(self):
        return self.inputs.split(10)

    @torch.no_grad()
    def evaluate(self, model):
        return self.metrics_of_outputs(model(self.inputs))

    @property
    def evaluation_batch(self):
        return self.inputs

    def metrics_of_outputs(self, outputs):
        return {"mse": float((outputs - self.reference).pow(2).mean())}


@pytest.mark.parametrize(
    ("quirk", "message"),
    [
        ("functional", "the batched forward gives mse="),
        ("mixes-rows", "the batched forward gives mse="),
        ("batch-statistics", "BatchNorm with batch statistics"),
    ],
)
def test_a_forward_that_cannot_be_batched_is_refused(quirk, message):
    from prunegym.pruning.channel.candidate_masks import UnsupportedBatching

    with pytest.raises(UnsupportedBatching, match=message):
        PruneEnv(QuirkyTask(quirk), batching="batched")
    assert PruneEnv(QuirkyTask("none"), batching="batched").batch_strategy == "batched"
    # On a GPU, auto tries the batched forward first and falls back when the probe fails.
    from prunegym.envs.evaluation.strategies import make_strategy

    env = PruneEnv(QuirkyTask(quirk), batching="sequential")
    fallback = make_strategy("auto", env.task, env._model, env.pruner, on_gpu=True)
    assert fallback.name == "sequential"
    good = PruneEnv(QuirkyTask("none"), batching="sequential")
    assert make_strategy("auto", good.task, good._model, good.pruner, on_gpu=True).name == "batched"


@pytest.mark.parametrize("name", ["mnist-ae", "mnist-convnet", "mnist-classifier"])
def test_memory_budget_chunks_give_the_same_numbers(name):
    whole = PruneEnv(name, batching="batched", cache=False, batch_memory_mb=4096)
    tiny = PruneEnv(name, batching="batched", cache=False, batch_memory_mb=1e-3)
    assert tiny.evaluator.strategy.chunk == 1 < whole.evaluator.strategy.chunk
    rows = np.random.default_rng(2).uniform(0, 0.5, (5, len(whole.groups)))
    a = [i["metric"] for i in whole.evaluate_batch(rows)]
    b = [i["metric"] for i in tiny.evaluate_batch(rows)]
    np.testing.assert_allclose(a, b, rtol=1e-5)
    with pytest.raises(ValueError, match="batch_memory_mb must be > 0"):
        PruneEnv(name, batching="batched", batch_memory_mb=0)


def test_a_batch_after_a_step_runs_on_the_dense_weights():
    stepped = PruneEnv("mnist-classifier", batching="batched", cache=False)
    fresh = PruneEnv("mnist-classifier", batching="batched", cache=False)
    stepped.step(np.full(len(stepped.groups), 0.5))  # masks written into its model
    _ = stepped.model
    rows = np.array([[0.1, 0.2], [0.3, 0.0]])
    a = [i["loss"] for i in stepped.evaluate_batch(rows)]
    b = [i["loss"] for i in fresh.evaluate_batch(rows)]
    assert a == b
    _ = stepped.model  # the env re-applies its own masks when its model is read
    np.testing.assert_array_equal(
        stepped.pruner.applied_counts, stepped.pruned_counts(np.full(2, 0.5))
    )


def test_auto_keeps_the_cpu_strategies_and_batches_on_request():
    assert PruneEnv("mnist-ae").batch_strategy == "sliced"
    assert PruneEnv("mnist-classifier").batch_strategy == "sequential"
    assert PruneEnv("mnist-classifier", batching="batched").batch_strategy == "batched"


# -- TD-MPC episodes as tensors -------------------------------------------------------------------
@pytest.fixture(scope="module")
def tensor_tdmpc():
    return make_task("tdmpc-pendulum", episodes=8, test_episodes=60, episode_engine="torch")


def test_tensor_episodes_equal_the_gymnasium_wrapped_ones(tensor_tdmpc):
    from prunegym.tasks.tdmpc.episodes import network_controller

    model = tensor_tdmpc.load_model()
    tensor = tensor_tdmpc.episode_returns(model)
    wrapped = tensor_tdmpc.runner.run_wrapped(
        network_controller(lambda frames: model.pi(model.encode(frames)))
    )
    np.testing.assert_allclose(tensor, wrapped, rtol=1e-9, atol=1e-9)
    assert tensor_tdmpc.evaluate(model)["return"] == pytest.approx(tensor_tdmpc.dense_return)


def test_first_convolution_table_equals_the_convolution(tensor_tdmpc):
    from prunegym.tasks.tdmpc.tensor_episodes import FirstConvTable

    model = tensor_tdmpc.load_model()
    frames = tensor_tdmpc._frame_table()
    keys = torch.randint(0, frames.bins, (64, 3), generator=torch.Generator().manual_seed(0))
    table = FirstConvTable(frames, model.preprocess)
    first = model.encoder[0]
    direct = first(model.preprocess(frames.stacks(keys)))
    torch.testing.assert_close(table.forward(first)(keys), direct, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        first.weight[3] = 0.0  # a mask written in place: the table follows
    direct = first(model.preprocess(frames.stacks(keys)))
    torch.testing.assert_close(table.forward(first)(keys), direct, rtol=1e-5, atol=1e-5)


def test_table_episodes_agree_with_exact_ones_on_held_out_episodes(tensor_tdmpc):
    from prunegym.tasks.intervals import paired_difference, significant

    model = tensor_tdmpc.load_model()
    exact = tensor_tdmpc.test_episode_metrics(model)
    table = make_task("tdmpc-pendulum", episodes=8, test_episodes=60, episode_engine="torch+table")
    tabled = table.test_episode_metrics(model)
    assert len(exact) == len(tabled) == 60
    assert not significant(*paired_difference(tabled, exact))


def test_tdmpc_candidates_step_together_on_the_device_path(tensor_tdmpc):
    from prunegym.tasks.intervals import paired_difference, significant

    batched = PruneEnv(tensor_tdmpc, batching="batched", cache=False)
    sequential = PruneEnv(tensor_tdmpc, batching="sequential", cache=False)
    assert batched.batch_strategy == "batched" and batched.evaluator.strategy.candidates
    rows = np.random.default_rng(0).uniform(0.0, 0.4, (6, len(batched.groups)))
    rows[0] = 0.0
    found = batched.evaluate_batch(rows)
    assert found[0]["return"] == pytest.approx(batched.dense_metric, rel=1e-6)  # masks of ones
    a = [i["return"] for i in found]
    b = [i["return"] for i in sequential.evaluate_batch(rows)]
    assert not significant(*paired_difference(a, b))
    assert min(a) < batched.dense_metric - 20  # the candidates really are pruned


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


def test_stacked_candidates_on_tensor_episodes_equal_sequential_ones(tensor_tdmpc):
    stacked = PruneEnv(tensor_tdmpc, batching="stacked", cache=False)
    sequential = PruneEnv(tensor_tdmpc, batching="sequential", cache=False)
    rows = np.random.default_rng(1).uniform(0.0, 0.4, (3, len(stacked.groups)))
    a = [i["return"] for i in stacked.evaluate_batch(rows)]
    b = [i["return"] for i in sequential.evaluate_batch(rows)]
    np.testing.assert_allclose(a, b, rtol=1e-9)
