"""Bad input gets one clear line, and a result file that claims what it did not find fails
validation (each case was found by a new user's bug hunt)."""

import json
import math
import re

import numpy as np
import pytest

from prunegym.agents import RandomSearch, make_agent
from prunegym.cli.main import main
from prunegym.envs import PruneEnv, check_task
from prunegym.tasks import make_task
from prunegym.tasks.toy import ToyTask


def _one_error_line(capsys, *needles) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("prunegym: error:")]
    assert len(errors) == 1 and err[-1] == errors[0] and "Traceback" not in "".join(err), err
    assert all(needle in errors[0] for needle in needles), err


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("random:samples=NaN", "samples=nan: must be an integer or null"),  # ran forever
        ("random:samples=Infinity", "samples=inf: must be an integer"),
        ("random:samples=1.5", "samples=1.5: must be an integer"),
        ('fd-momentum:refine="no"', "refine='no': must be true or false"),
        ("fd-momentum:channels=1.5", "channels=1.5: must be an integer"),
        ("fd-momentum:learning_rate=abc", "learning_rate='abc': must be a finite number"),
        ("fd-momentum:penalty=NaN", "penalty=nan: must be a finite number or null"),
        ("fd-momentum:penalty=-5", "penalty must be >= 0"),
        ("uniform:metric_floor=nan", "metric_floor='nan': must be a finite number or null"),
    ],
)
def test_solver_options_of_the_wrong_kind_are_refused(spec, message):
    with pytest.raises(ValueError) as error:
        make_agent(spec)
    assert message in str(error.value)


def test_values_the_solvers_always_took_still_pass(tmp_path):
    from pathlib import Path

    from prunegym.agents import AskTellAgent
    from prunegym.agents.learned_policy import policy_path

    assert make_agent("learned-policy", policy=Path(policy_path())).policy is not None
    assert make_agent("random", seed=None).seed is None
    assert make_agent("fd-momentum", monotone=np.bool_(True), channels=np.int64(2)).channels == 2

    class Levels(AskTellAgent):  # stores its option converted, under the same name
        def __init__(self, levels: str = "0.1,0.2", **kwargs):
            super().__init__(**kwargs)
            self.levels = [float(v) for v in levels.split(",")]

        def ask(self):
            return None if self.asked else np.full((1, 5), self.levels[0])

        def start(self, problem):
            self.asked = False

        def tell(self, candidates, evaluations):
            self.asked = True

    result = Levels(progress=False, seed=np.int64(3)).run(PruneEnv("toy"))
    assert result.evaluations == 1 and json.loads(result.to_json())["seed"] == 3


def test_an_infinitely_good_metric_counts_and_an_infinitely_bad_one_does_not():
    from prunegym.agents.session import meets_floor, usable_metric

    assert usable_metric(math.inf, 1.0) and not usable_metric(-math.inf, 1.0)  # PSNR
    assert usable_metric(-math.inf, -1.0) and not usable_metric(math.inf, -1.0)  # a loss
    assert not usable_metric(math.nan, 1.0) and not meets_floor(math.nan, -1.0, None)
    assert meets_floor(20.0, 1.0, 19.5) and not meets_floor(19.0, 1.0, 19.5)


def test_a_setting_without_a_value_is_not_read_as_a_module():
    with pytest.raises(ValueError, match="the setting 'samples' needs a value, key=value"):
        make_agent("random:samples")


def test_a_solver_built_directly_is_checked_when_it_runs(capsys):
    with pytest.raises(ValueError, match="samples=nan: must be an integer"):
        RandomSearch(samples=float("nan"), progress=False).run(PruneEnv("toy"))
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        RandomSearch(samples=2, seed=-1, progress=False).run(PruneEnv("toy"))
    assert main(["solve", "toy", "--solver", "uniform", "--seed", "-1"]) == 2
    _one_error_line(capsys, "--seed must be >= 0, got -1")


@pytest.mark.parametrize(
    ("task", "options", "message"),
    [
        ("toy", {"samples": 0}, "option samples must be >= 1, got 0"),
        ("toy", {"samples": "abc"}, "samples='abc': must be an integer"),
        ("toy", {"seed": 1.5}, "seed=1.5: must be an integer"),
        ("mnist-ae", {"batch_size": 0}, "batch_size must be >= 1"),
        ("mnist-ae", {"calibration_size": -1}, "calibration_size must be >= 1"),
        ("mnist-classifier", {"calibration_size": 2.5}, "calibration_size=2.5: must be an"),
        ("tdmpc-pendulum", {"plan_horizon": 0}, "plan_horizon must be >= 1"),
    ],
)
def test_task_options_of_the_wrong_kind_or_range_are_refused(task, options, message):
    with pytest.raises(ValueError) as error:
        make_task(task, **options)
    assert message in str(error.value)


def test_a_corrupt_mnist_folder_is_one_line(tmp_path, capsys):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images", "train-labels", "t10k-images", "t10k-labels"):
        kind = "idx3" if "images" in name else "idx1"
        (raw / f"{name}-{kind}-ubyte").write_bytes(bytes(range(100)))
    assert main(["solve", "mnist-ae", "--solver", "uniform", "--data-root", str(tmp_path)]) == 2
    _one_error_line(capsys, "are corrupt or not MNIST's idx format")


def test_output_paths_are_checked_before_any_work(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    assert main(["solve", "toy", "--solver", "uniform", "--out", str(afile)]) == 2
    _one_error_line(capsys, "is a file; give a folder")
    assert main(["evaluate", "toy", "--coefficients", "0.1,0.1,0.1,0.1,0.1", "--out", str(afile)])
    _one_error_line(capsys, "is a file; give a folder")
    bench = ["bench", "--tasks", "toy", "--seeds", "1", "--out", str(tmp_path / "b")]
    assert main([*bench, "--solvers", "uniform", "--targets", "0.2,0.2"]) == 2
    _one_error_line(capsys, "target 0.2 is listed twice")
    assert main([*bench, "--solvers", "uniform", "--targets", "0.2,0.2000001"]) == 2
    _one_error_line(capsys, "is listed twice")  # both would write target-0.2_seed-0.json
    assert main([*bench, "--solvers", "uniform,norm,uniform", "--targets", "0.2"]) == 2
    _one_error_line(capsys, "solver 'uniform' is listed twice")
    assert not (tmp_path / "b").exists()
    result = make_agent("uniform", progress=False).run(PruneEnv("toy", target=0.3))
    result.save(tmp_path / "r.json")
    assert main(["export", str(tmp_path / "r.json"), "--out", str(tmp_path)]) == 2
    _one_error_line(capsys, "is a folder; give a file name")
    assert main(["export", str(tmp_path / "r.json"), "--out", str(afile / "m.pt2")]) == 2
    _one_error_line(capsys, "is a file, not a folder")


@pytest.fixture(scope="module")
def uniform_result(tmp_path_factory):
    path = tmp_path_factory.mktemp("validate") / "r.json"
    make_agent("uniform", progress=False).run(PruneEnv("toy", target=0.3)).save(path)
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"feasible": False}, "feasible is True, the result recorded False"),
        ({"feasible": False, "message": "made up"}, "feasible is True, the result recorded"),
        ({"metric_name": "psnr"}, "metric_name is 'mse', the result recorded 'psnr'"),
        ({"metrics": {"mse": 3.0}}, "the result recorded 3"),
        ({"metrics": {"mse": None, "foo": 1.0}}, "metrics is"),
        ({"solver_settings": {"metric_floor": 1e-9}}, "feasible is False, the result recorded"),
        ({"coefficients": None}, "coefficients is None"),
        ({"metric": "abc"}, "metric is 'abc'"),
        ({"task_options": "x"}, "task_options is 'x'"),
        ({"env_options": {"foo": 1}}, "env_options name no PruneEnv option: ['foo']"),
    ],
)
def test_validate_fails_a_hand_edited_result(uniform_result, edit, message, tmp_path, capsys):
    path = tmp_path / "edited.json"
    original = tmp_path / "original.json"
    original.write_text(json.dumps(uniform_result))
    assert main(["validate", str(original)]) == 0
    capsys.readouterr()
    path.write_text(json.dumps({**uniform_result, **edit}))
    assert main(["validate", str(path)]) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


def test_validate_refuses_a_nan_tolerance(uniform_result, tmp_path, capsys):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(uniform_result))
    assert main(["validate", str(path), "--rtol", "nan"]) == 2
    _one_error_line(capsys, "--rtol and --atol must be >= 0, got nan")


def test_a_result_file_with_a_metric_the_task_does_not_compute_fails(uniform_result, tmp_path):
    path = tmp_path / "extra.json"
    metrics = {**uniform_result["metrics"], "foo": 1.0}
    path.write_text(json.dumps({**uniform_result, "metrics": metrics}))
    assert main(["validate", str(path)]) == 1


class BrokenWhenPruned(ToyTask):
    """The dense model evaluates; any pruned one gives NaN (a model the pruning broke)."""

    def evaluate(self, model):
        metrics = super().evaluate(model)
        pruned = any(bool((p == 0).all(dim=-1).any()) for p in model.parameters() if p.ndim == 2)
        return {key: math.nan for key in metrics} if pruned else metrics


def test_a_non_finite_metric_is_never_feasible():
    env = PruneEnv(BrokenWhenPruned(), target=0.3, batching="sequential")
    result = make_agent("random:samples=3", progress=False).run(env)
    assert not result.feasible and math.isnan(result.metric)
    assert "gave NaN or an infinitely bad metric" in result.message


def test_check_task_names_a_broken_task():
    class NanDense(ToyTask):
        def evaluate(self, model):
            return {key: math.nan for key in super().evaluate(model)}

    class NoMetric(ToyTask):
        def evaluate(self, model):
            return {"other": 1.0}

    class DecoderChain(ToyTask):  # starts at a layer whose inputs are masked
        def evaluation_chain(self, model):
            return self.reference, list(model.decoder)

    with pytest.raises(RuntimeError, match="evaluate\\(\\) of the dense model gives"):
        check_task(NanDense())
    with pytest.raises(ValueError, match="returned \\['other'\\], without its metric 'mse'"):
        PruneEnv(NoMetric())
    with pytest.raises(RuntimeError, match="evaluation_chain\\(\\) cannot be sliced: the chain"):
        check_task(DecoderChain())


def test_pixel_pendulum_renders_as_gymnasium_asks():
    import gymnasium as gym

    env = gym.make("prunegym/PixelPendulum-v0", render_mode="rgb_array")
    observation, _ = env.reset(seed=0)
    frame = env.render()
    assert observation.shape == env.observation_space.shape and frame.shape[2:] == (3,)
    assert frame.dtype == np.uint8 and frame.std() > 0
    env.close()


def test_the_oracles_refuse_what_they_cannot_count():
    env = PruneEnv("toy")
    with pytest.raises(ValueError, match="coefficients must be finite"):
        env.sparsity_of(np.full(5, np.nan))
    for limit in (-1, 2.5, True, float("nan")):
        with pytest.raises(ValueError, match="limit must be None or an integer >= 0"):
            env.evaluate_batch(np.full((2, 5), 0.2), limit=limit)
    assert len(env.evaluate_batch(np.full((2, 5), 0.2), limit=1)) == 2  # one new mask, twice


def test_the_generic_ids_take_a_built_task():
    import gymnasium as gym

    env = gym.make("prunegym/Prune-v0", task=ToyTask(seed=1), target=0.3)
    assert env.unwrapped.task.seed == 1
    with pytest.raises(ValueError, match="task_options apply to a task given by name"):
        gym.make("prunegym/PruneSequential-v0", task=ToyTask(), task_options={"seed": 2})


def test_probes_and_a_zero_window_are_refused_by_name():
    with pytest.raises(ValueError, match="probes must be a whole number .* >= 1 for optimal"):
        PruneEnv("toy", compensation="optimal", probes=0)
    with pytest.raises(ValueError, match="PruneEnv option probes=1.5: must be an integer"):
        PruneEnv("toy", probes=1.5)
    with pytest.raises(ValueError, match="probes must be a whole number .*, >= 0, got -1"):
        PruneEnv("toy", probes=-1)
    with pytest.raises(ValueError, match=r"tolerance must be a number in \(0, 1\), got 0"):
        PruneEnv("toy", tolerance=0)
    assert PruneEnv("toy", target=0.0).target == 0.0  # the dense model's window stays valid


def test_registering_over_a_built_in_warns(monkeypatch):
    import prunegym.agents as agents
    import prunegym.tasks as tasks

    monkeypatch.setattr(tasks, "_REGISTERED", {})
    monkeypatch.setattr(agents, "_REGISTERED", {})
    with pytest.warns(UserWarning, match="replaces the built-in task 'toy'"):
        tasks.register_task("toy", ToyTask)
    with pytest.warns(UserWarning, match="replaces the built-in solver 'grid'"):
        agents.register_agent("grid", RandomSearch)
    with pytest.warns(UserWarning, match="'mine' was registered before"):
        tasks.register_task("mine", ToyTask)
        tasks.register_task("mine", lambda: ToyTask())
    monkeypatch.setattr(tasks, "entry_point_specs", lambda group: {"installed": "pkg:Task"})
    with pytest.warns(UserWarning, match="replaces the installed task 'installed'"):
        tasks.register_task("installed", ToyTask)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tasks.register_task("spec", "prunegym.tasks.toy:ToyTask")
        tasks.register_task("spec", "prunegym.tasks.toy:ToyTask")  # an equal factory again


def test_a_tiny_metric_is_printed_with_its_digits(capsys):
    assert main(["solve", "toy", "--solver", "uniform", "--target", "0.5"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("mse "))
    assert "e-0" in line.split("(dense")[0], line  # not 0.0000


def test_weight_granularity_refuses_negative_probes_too():
    with pytest.raises(ValueError, match="probes must be a whole number"):
        PruneEnv("toy", granularity="weight", probes=-2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cache": "no"}, "PruneEnv option cache='no': must be true or false"),
        ({"penalty": "5"}, "PruneEnv option penalty='5': must be a finite number"),
        ({"seed": 1.5}, "PruneEnv option seed=1.5: must be an integer"),
        ({"seed": -3}, "seed must be >= 0, got -3"),
        ({"batch_memory_mb": -5}, "batch_memory_mb must be > 0 or None, got -5"),
    ],
)
def test_env_options_of_the_wrong_kind_are_one_line(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        PruneEnv("toy", **options)


def test_numpy_integers_pass_as_seeds_and_probes():
    env = PruneEnv("toy", seed=np.int64(3), compensation="optimal", probes=np.int64(2))
    assert env.options["seed"] == 3 and type(env.options["probes"]) is int
    assert env.step(np.full(5, 0.2))[4]["feasible"] in (True, False)


def test_a_plugin_name_that_is_not_text_is_one_line():
    from prunegym.tasks import register_task

    with pytest.raises(ValueError, match="a task name must be non-empty and contain no ':'"):
        register_task(5, ToyTask)
