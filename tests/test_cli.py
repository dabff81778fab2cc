import json

import pytest

from prunegym.cli import main


def test_groups_prints_the_table(capsys):
    assert main(["groups", "mnist-ae"]) == 0
    out = capsys.readouterr().out
    assert out.count("Component-specific") == 4 and "Coupling" in out
    assert "532,992" in out and "1,132,944" in out


def test_solve_mnist_prints_psnr_and_a_feasible_uniform_allocation(capsys, tmp_path):
    plot = tmp_path / "grid.png"
    assert main(["solve", "mnist-ae", "--target", "0.2", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "psnr" in out and "feasible     True" in out and "encoder-decoder 1" in out
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"


def test_solve_json_is_the_only_thing_on_stdout(capsys):
    assert main(["solve", "toy", "--target", "0.3", "--tolerance", "0.02", "--json"]) == 0
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
