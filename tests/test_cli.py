import json

import pytest

from prunegym.cli import main


def test_groups_prints_the_table(capsys):
    assert main(["groups", "mnist-ae"]) == 0
    out = capsys.readouterr().out
    assert out.count("Component-specific") == 4 and "Coupling" in out
    assert "532,992" in out and "1,132,944" in out


def test_solve_mnist_prints_psnr_and_a_feasible_fd_momentum_allocation(capsys, tmp_path):
    plot = tmp_path / "grid.png"
    assert main(["solve", "mnist-ae", "--target", "0.2", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "solver: fd-momentum" in out and "feasible     True" in out
    assert "psnr" in out and "encoder-decoder 1" in out
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"


def test_solve_json_is_the_only_thing_on_stdout(capsys):
    argv = ["solve", "toy", "--solver", "uniform", "--target", "0.3", "--tolerance", "0.02"]
    assert main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert record["solver"] == "uniform" and record["task"] == "toy"
    assert abs(record["sparsity"] - 0.3) <= 0.02 and record["feasible"] is True
    assert len(record["coefficients"]) == 5 and record["evaluations"] == len(record["history"])
    assert "building toy" in captured.err


def test_evaluate_broadcasts_one_value_and_reports_bad_input(capsys):
    assert main(["evaluate", "toy", "--coefficients", "0.4", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["coefficients"] == [0.4] * 5 and record["metric"] > 0
    assert main(["evaluate", "toy", "--coefficients", "0.1,2.0,0.1,0.1,0.1"]) == 2
    assert "action[1]=2.0" in capsys.readouterr().err


def test_tasks_lists_every_task(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "mnist-ae" in out and "toy" in out
    with pytest.raises(SystemExit):
        main(["groups", "cifar"])


def test_solve_json_matches_the_result_schema_and_saves_it(capsys, tmp_path):
    from prunegym.agents import Result

    out = tmp_path / "result.json"
    argv = ["solve", "toy", "--solver", "grid", "--option", "points=4", "--out", str(out)]
    assert main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    result = Result.from_json(captured.out)  # exactly the Result's JSON, nothing else
    assert result == Result.load(out)
    assert result.solver == "grid" and result.details["combinations"] == 4**5
    assert result.evaluations == len(result.history) <= result.details["survivors"]


def test_solve_reports_bad_solver_options_and_budgets(capsys):
    assert main(["solve", "toy", "--solver", "grid", "--option", "bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main(["solve", "toy", "--solver", "random", "--budget", "0"]) == 2
    assert "positive integer" in capsys.readouterr().err
    assert main(["solve", "toy", "--solver", "random"]) == 2
    assert "does not stop by itself" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["solve", "toy", "--solver", "simulated-annealing"])


@pytest.mark.parametrize(
    "flags, message",
    [(["--target", "0"], "--target"), (["--target", "0.97"], "--target"),
     (["--tolerance", "0"], "--tolerance"), (["--tolerance", "-0.1"], "--tolerance")],
)  # fmt: skip
def test_solve_rejects_windows_out_of_range_in_one_line(flags, message, capsys):
    assert main(["solve", "toy", "--solver", "uniform", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("prunegym: error:") and message in err[0]
