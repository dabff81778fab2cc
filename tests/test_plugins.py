"""Plugins: a user's own task and solver by ``module:attribute``, by ``register_*`` and as an
installed package's entry points, through ``solve``, ``validate``, ``bench`` and ``gym.make``."""

import json
import textwrap

import gymnasium as gym
import pytest

import prunegym
from prunegym.agents import Result, agent_names, make_agent, register_agent
from prunegym.cli.main import main
from prunegym.tasks import make_task, register_task, task_names

# A user's classifier whose batches are (inputs, labels), and an ask/tell solver, in one module.
USER_MODULE = textwrap.dedent('''
    import numpy as np
    import torch
    from torch import nn

    from prunegym import Task
    from prunegym.agents import AskTellAgent


    class MyTask(Task):
        """A seeded 12-32-16-3 classifier; metric: cross-entropy on 200 labelled samples."""

        name = "mytask"
        metric = "loss"
        higher_is_better = False

        def __init__(self, seed: int = 0):
            generator = torch.Generator().manual_seed(seed)
            self.seed = seed
            self.x = torch.randn(200, 12, generator=generator)
            self.y = torch.randint(0, 3, (200,), generator=generator)

        def build_model(self):
            torch.manual_seed(self.seed)
            model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(),
                                  nn.Linear(16, 3))
            return model.eval()

        def components(self, model):
            return {"body": model}

        @property
        def example_inputs(self):
            return self.x[:2]

        def calibration_batches(self):
            return list(zip(self.x.split(50), self.y.split(50)))

        def forward(self, model, batch):
            inputs, _labels = batch
            return model(inputs)

        def loss(self, model, batch):
            inputs, labels = batch
            return nn.functional.cross_entropy(model(inputs), labels)

        @torch.no_grad()
        def evaluate(self, model):
            return {"loss": float(nn.functional.cross_entropy(model(self.x), self.y))}

        def options(self):
            return {"seed": self.seed}


    def seeded_task(seed):
        """A factory function whose option has no default."""
        return MyTask(seed)


    class MySolver(AskTellAgent):
        """Random coefficients, 4 at a time; it never stops by itself."""

        terminates = False

        def start(self, problem):
            self.problem, self.rng = problem, np.random.default_rng(self.seed)

        def ask(self):
            return self.rng.uniform(0, 0.6, (4, self.problem.size))

        def tell(self, candidates, evaluations):
            pass
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "mytask.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_a_users_task_and_solver_work_in_solve_validate_and_export(user_module, tmp_path):
    run = tmp_path / "run"
    argv = ["solve", "mytask:MyTask", "--solver", "mytask:MySolver", "--target", "0.3",
            "--tolerance", "0.05", "--budget", "24", "--no-progress",
            "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    result = Result.load(run / "result.json")
    assert result.task == "mytask:MyTask" and result.solver == "mytask:MySolver"
    assert result.evaluations == 24 and result.metric_name == "loss"
    assert (run / "model.pt2").stat().st_size > 0 and (run / "coefficients.png").exists()
    assert main(["validate", str(run / "result.json")]) == 0
    assert main(["export", str(run / "result.json"), "--out", str(tmp_path / "m.pt2")]) == 0


def test_a_solver_that_never_stops_needs_a_budget(user_module, capsys):
    argv = ["solve", "mytask:MyTask", "--solver", "mytask:MySolver", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("prunegym: error: solver 'mytask:MySolver' does not stop by itself")


def test_bad_specs_and_names_get_one_clear_line(user_module, capsys):
    for task, message in [
        ("nomodule:Task", "cannot import module 'nomodule'"),
        ("mytask:Missing", "module 'mytask' has no 'Missing'"),
        ("mytask:np", "task 'mytask:np' is not a prunegym Task: <module 'numpy'"),
        ("no-such-task", "unknown task 'no-such-task'"),
    ]:
        assert main(["groups", task]) == 2
        assert message in capsys.readouterr().err
    assert main(["solve", "toy", "--solver", "mytask:MyTask", "--budget", "3"]) == 2
    assert "solver 'mytask:MyTask' is not a prunegym Agent: <class" in capsys.readouterr().err


def test_gym_make_and_bench_take_a_users_task(user_module, tmp_path):
    from gymnasium.utils.env_checker import check_env

    env = gym.make("prunegym/Prune-v0", task="mytask:MyTask", task_options={"seed": 1})
    assert env.unwrapped.task.name == "mytask:MyTask" and env.unwrapped.task.seed == 1
    check_env(env.unwrapped, skip_render_check=True)
    out = tmp_path / "bench"
    argv = ["bench", "--tasks", "mytask:MyTask", "--solvers", "uniform,mytask:MySolver",
            "--targets", "0.3", "--seeds", "1", "--budget", "8", "--no-baselines",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert len(list((out / "cells").rglob("*.json"))) == 2
    assert "mytask:MySolver" in (out / "results.csv").read_text()
    # a factory function that needs its option: the report reads the direction from the results
    argv[2:3], argv[-1] = ["mytask:seeded_task", "--task-option", "seed=2"], str(out / "made")
    assert main(argv) == 0
    report = (out / "made" / "report.md").read_text()
    assert "## mytask:seeded_task: loss, lower is better" in report


def test_register_task_and_register_agent(user_module):
    from mytask import MySolver, MyTask

    register_task("registered-task", MyTask)
    register_agent("registered-solver", MySolver)
    assert "registered-task" in task_names() and "registered-solver" in agent_names()
    task = prunegym.make_task("registered-task", seed=2)
    assert isinstance(task, MyTask) and task.name == "registered-task" and task.seed == 2
    agent = make_agent("registered-solver", progress=False, seed=1)
    assert isinstance(agent, MySolver) and agent.name == "registered-solver"
    with pytest.raises(ValueError, match="contain no ':'"):
        register_task("a:b", MyTask)
    with pytest.raises(ValueError, match="takes no option 'depth'"):
        make_task("registered-task", depth=3)


def test_an_installed_package_adds_tasks_and_solvers_through_entry_points(tmp_path, monkeypatch):
    """A tiny installed distribution: a package plus a .dist-info folder whose entry points
    name a task and a solver, found on sys.path as pip would leave them."""
    site = tmp_path / "site"
    (site / "myplugin").mkdir(parents=True)
    (site / "myplugin" / "__init__.py").write_text(USER_MODULE)
    info = site / "myplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[prunegym.tasks]\nplugin-task = myplugin:MyTask\n\n"
        "[prunegym.agents]\nplugin-solver = myplugin:MySolver\n"
    )
    monkeypatch.syspath_prepend(str(site))
    assert "plugin-task" in task_names() and "plugin-solver" in agent_names()
    run = tmp_path / "run"
    argv = ["solve", "plugin-task", "--solver", "plugin-solver", "--target", "0.3",
            "--tolerance", "0.05", "--budget", "8", "--no-progress", "--json"]  # fmt: skip
    assert main([*argv[:-1], "--out", str(run)]) == 0
    record = json.loads((run / "result.json").read_text())
    assert record["task"] == "plugin-task" and record["solver"] == "plugin-solver"
    assert main(["validate", str(run / "result.json")]) == 0


def test_a_spec_is_found_in_the_current_folder(tmp_path, monkeypatch):
    """``prunegym solve cwdtask:MyTask`` from the folder that holds cwdtask.py, as a user
    types it after writing the file: no PYTHONPATH needed."""
    import sys

    (tmp_path / "cwdtask.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "cwdtask", raising=False)
    argv = ["solve", "cwdtask:MyTask", "--solver", "cwdtask:MySolver", "--budget", "4",
            "--target", "0.3", "--tolerance", "0.05", "--no-progress", "--out", "run"]  # fmt: skip
    assert main(argv) == 0 and main(["validate", "run/result.json"]) == 0
    assert sys.path[-1] == str(tmp_path)  # appended: installed modules keep precedence
