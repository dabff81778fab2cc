"""Every solver through ``prunegym solve --out``, ``--json`` and ``prunegym bench`` on the toy
task with a tiny budget: the result file, the coefficient bars and the exported model.

Solvers other than Torch-Pruning (SB3 included) export the network pruned at their best
coefficients; Torch-Pruning exports the network it pruned itself (``agent.pruned_model``).
"""

import csv
import json

import numpy as np
import pytest
import torch

from prunegym.agents import Result, agent_names
from prunegym.cli.main import main
from prunegym.results.replay import environment_for

SOLVERS = agent_names()
BUDGET = "8"  # evaluations; one-shot solvers (uniform, norm, torch-pruning) use one
WINDOW = ["--target", "0.3", "--tolerance", "0.05"]
# the grid pre-filters all points**5 combinations before its first evaluation: keep it small
OPTIONS = {"grid": ["--option", "points=6"]}


def _solve(name: str, *extra: str) -> int:
    argv = ["solve", "toy", "--solver", name, *WINDOW, "--budget", BUDGET, "--no-progress"]
    return main([*argv, *OPTIONS.get(name, []), *extra])


def _check_result(result: Result, name: str) -> None:
    assert result.solver == name and result.task == "toy"
    assert 1 <= result.evaluations <= int(BUDGET)
    coefficients = np.asarray(result.coefficients)
    assert coefficients.shape == (len(result.groups),) == (5,)
    assert np.all(np.isfinite(coefficients))
    assert np.all((coefficients >= 0) & (coefficients <= 0.95))


def test_every_solver_is_covered():
    assert set(SOLVERS) >= {"grid", "fd-momentum", "uniform", "norm", "random", "torch-pruning",
                            "optuna-tpe", "optuna-cmaes", "ppo", "sac", "td3"}  # fmt: skip


@pytest.mark.parametrize("name", SOLVERS)
def test_solve_out_writes_result_bars_and_a_model_that_matches_the_coefficients(name, tmp_path):
    out = tmp_path / "run"
    assert _solve(name, "--out", str(out)) == 0
    result = Result.load(out / "result.json")
    _check_result(result, name)

    bars = out / "coefficients.png"
    assert bars.stat().st_size > 1_000 and bars.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    exported = torch.export.load(out / "model.pt2").module()
    env = environment_for(result)  # the result's task, window, ranking and dense weights
    inputs = env.task.example_inputs
    dense_parameters = sum(p.numel() for p in env.model.parameters())
    kept = sum(p.numel() for p in exported.parameters())
    with torch.no_grad():
        output = exported(inputs)
        assert output.shape == env.model(inputs).shape and torch.all(torch.isfinite(output))
    if name == "torch-pruning":  # its own physically pruned network, not the masks
        assert kept == result.details["parameters_kept"]
        assert result.sparsity == pytest.approx(1 - kept / result.details["parameters_dense"])
        return
    coefficients = np.asarray(result.coefficients)
    again = env.export(coefficients)  # Torch-Pruning traces with autograd: not under no_grad
    env.reset()
    env.step(coefficients)  # the masked (and compensated) network the solver evaluated
    with torch.no_grad():
        torch.testing.assert_close(output, again(inputs), rtol=0, atol=1e-5)
        torch.testing.assert_close(output, env.model(inputs), rtol=0, atol=1e-5)
    if result.sparsity > 0:  # some channel removed: the exported network is smaller
        assert kept < dense_parameters


@pytest.mark.parametrize("name", SOLVERS)
def test_solve_json_prints_one_result_on_stdout(name, capsys):
    assert _solve(name, "--json") == 0
    captured = capsys.readouterr()
    result = Result.from_json(captured.out)
    _check_result(result, name)
    assert json.loads(captured.out)["solver"] == name  # nothing else on stdout
    assert result.evaluations == len(result.history)


def test_bench_runs_every_solver_on_the_toy_task(tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["bench", "--tasks", "toy", "--solvers", ",".join(SOLVERS), "--targets", "0.3",
            "--seeds", "1", "--tolerance", "0.05", "--budget", BUDGET,
            "--option", "grid:points=6", "--no-baselines", "--no-progress",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert f"{len(SOLVERS)} cells run, 0 already done" in capsys.readouterr().err
    for name in SOLVERS:
        files = list((out / "cells" / "toy" / name).glob("*.json"))
        assert [f.name for f in files] == ["target-0.3_seed-0.json"]
        _check_result(Result.load(files[0]), name)
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["solver"] for row in rows) == sorted(SOLVERS)
    assert {row["target"] for row in rows} == {"0.3"} and {row["seed"] for row in rows} == {"0"}
