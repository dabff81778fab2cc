import json

import pytest

from prunegym.cli.main import main


def test_groups_prints_the_table(capsys):
    assert main(["groups", "mnist-ae"]) == 0
    out = capsys.readouterr().out
    assert out.count("Component-specific") == 4 and "Coupling" in out
    assert "532,992" in out and "1,132,944" in out


def _is_png(path) -> bool:
    return path.stat().st_size > 10_000 and path.read_bytes()[:4] == b"\x89PNG"


def test_solve_mnist_out_dir_holds_result_pictures_and_a_smaller_model(capsys, tmp_path):
    import torch

    from prunegym.agents import Result

    out = tmp_path / "run"
    assert main(["solve", "mnist-ae", "--target", "0.2", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "solver: fd-momentum" in printed.out and "feasible     True" in printed.out
    assert "psnr" in printed.out and "encoder-decoder 1" in printed.out
    assert "1,132,944 dense ->" in printed.err  # the export summary
    result = Result.load(out / "result.json")
    assert result.feasible and _is_png(out / "picture.png") and _is_png(out / "coefficients.png")
    model = torch.export.load(out / "model.pt2").module()
    kept = sum(p.numel() for name, p in model.named_parameters())
    assert kept < 0.85 * 1_132_944 and model(torch.rand(4, 784)).shape == (4, 784)
    costs = result.costs  # counted from the masks; the latencies measured on the export
    assert costs["params_kept"] == kept and f"{costs['macs']:,} exported" in printed.err
    assert costs["macs"] < costs["macs_dense"] and len(costs["channel_fractions"]) == 5
    assert costs["latency_ms"] > 0 and costs["latency_dense_ms"] > 0
    assert "MACs  " in printed.out and "latency " in printed.err


def test_solve_toy_out_dir_has_no_task_picture_but_everything_else(tmp_path):
    out = tmp_path / "run"
    assert main(["solve", "toy", "--solver", "uniform", "--target", "0.3", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["coefficients.png", "model.pt2", "result.json"]


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


def test_tasks_lists_every_task_with_groups_dense_metric_and_parameters(capsys):
    assert main(["tasks"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert rows["mnist-ae"][1:5] == ["5", "psnr", "20.77", "1,132,944"]
    assert rows["toy"][1:5] == ["5", "mse", "0", "3,080"]
    assert rows["tdmpc-pendulum"][1:3] == ["15", "return"]
    assert rows["tdmpc-pendulum"][4] == "1,530,952" and float(rows["tdmpc-pendulum"][3]) < -100


def test_solve_json_matches_the_result_schema_and_saves_it(capsys, tmp_path):
    from prunegym.agents import Result

    argv = ["solve", "toy", "--solver", "grid", "--option", "points=4", "--out", str(tmp_path)]
    assert main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    result = Result.from_json(captured.out)  # exactly the Result's JSON, nothing else
    assert result == Result.load(tmp_path / "result.json")
    assert result.solver == "grid" and result.details["combinations"] == 4**5
    assert result.evaluations == len(result.history) <= result.details["survivors"]


def test_solve_reports_bad_solver_options_and_budgets(capsys):
    assert main(["solve", "toy", "--solver", "grid", "--option", "bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main(["solve", "toy", "--solver", "random", "--budget", "0"]) == 2
    assert "positive integer" in capsys.readouterr().err
    assert main(["solve", "toy", "--solver", "random"]) == 2
    assert "does not stop by itself" in capsys.readouterr().err


def _one_error_line(capsys, *needles) -> None:
    """stderr holds one ``prunegym: error:`` line naming the problem (after any progress
    messages such as "building ..."), and no traceback."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("prunegym: error:")]
    assert len(errors) == 1 and err[-1] == errors[0] and "Traceback" not in "".join(err), err
    assert all(needle in errors[0] for needle in needles), err


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["groups", "cifar"], ["unknown task 'cifar'", "mnist-ae", "module:attribute"]),
        (["solve", "cifar"], ["unknown task 'cifar'"]),
        (["solve", "toy", "--solver", "annealing"], ["unknown solver 'annealing'", "fd-momentum"]),
        (["solve", "toy", "--target", "half"], ["--target", "invalid float"]),
        (["bench", "--tasks", "cifar", "--solvers", "uniform", "--out", "x"], ["cifar"]),
        (["bench", "--tasks", "toy", "--solvers", "uniform", "--targets", "0.97", "--out", "x"],
         ["targets must lie in (0, 0.95)"]),
        (["bench", "--tasks", "toy", "--solvers", "uniform", "--tolerance", "0", "--out", "x"],
         ["tolerance must lie in (0, 1)"]),
        (["bench", "--tasks", "toy", "--solvers", "uniform", "--seeds", "0", "--out", "x"],
         ["seeds must be a positive integer"]),
        (["validate", "missing.json"], ["result file not found: missing.json"]),
        (["export", "missing.json", "--out", "m.pt2"], ["result file not found"]),
        (["groups", "mnist-ae", "--checkpoint", "missing.pt"], ["missing.pt"]),
        (["evaluate", "toy", "--coefficients", "a,b"], ["--coefficients"]),
        (["solve"], ["required"]),
        (["solve", "toy", "--device", "tpu"], ["unknown device 'tpu'", "cpu, cuda, cuda:N"]),
        (["groups", "toy", "--device", "cuda:5"], ["'cuda:5'", "available here"]),
        (["bench", "--tasks", "toy", "--solvers", "uniform", "--device", "gpu0", "--out", "x"],
         ["unknown device 'gpu0'"]),
        (["solve", "toy", "--precision", "fp16"], ["--precision", "invalid choice"]),
        (["validate", "missing.json", "--device", "tpu"], ["unknown device 'tpu'"]),
    ],
)  # fmt: skip
def test_bad_arguments_give_one_clear_line_and_exit_2(argv, needles, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        raise SystemExit(main(argv))
    assert stop.value.code == 2
    _one_error_line(capsys, *needles)
    assert not (tmp_path / "x").exists()  # nothing was run or written


@pytest.mark.parametrize(
    "flags, message",
    [(["--target", "0"], "--target"), (["--target", "0.97"], "--target"),
     (["--tolerance", "0"], "--tolerance"), (["--tolerance", "-0.1"], "--tolerance")],
)  # fmt: skip
def test_solve_rejects_windows_out_of_range_in_one_line(flags, message, capsys):
    assert main(["solve", "toy", "--solver", "uniform", *flags]) == 2
    _one_error_line(capsys, message)


def test_groups_and_evaluate_run_on_the_toy_task(capsys, tmp_path):
    from prunegym.agents import Result

    assert main(["groups", "toy"]) == 0
    assert "encoder-decoder" in capsys.readouterr().out
    out = tmp_path / "eval"
    assert main(["evaluate", "toy", "--coefficients", "0.3", "--out", str(out)]) == 0
    result = Result.load(out / "result.json")
    assert result.solver == "manual" and result.coefficients == [0.3] * 5
    assert (out / "model.pt2").stat().st_size > 0 and (out / "coefficients.png").exists()


def test_train_writes_a_checkpoint_that_solve_and_validate_use(capsys, tmp_path):
    from prunegym.agents import Result

    checkpoint = tmp_path / "ae.pt"
    assert main(["train", "mnist-ae", "--epochs", "1", "--out", str(checkpoint)]) == 0
    assert "test psnr" in capsys.readouterr().out and checkpoint.stat().st_size > 1_000_000
    out = tmp_path / "run"
    argv = ["solve", "mnist-ae", "--checkpoint", str(checkpoint), "--solver", "uniform"]
    assert main([*argv, "--out", str(out)]) == 0
    result = Result.load(out / "result.json")
    assert result.task_options["checkpoint"] == str(checkpoint)
    assert main(["validate", str(out / "result.json")]) == 0
    record = json.loads((out / "result.json").read_text())
    del record["task_options"]["checkpoint"]  # now it points at the shipped checkpoint
    (tmp_path / "shipped.json").write_text(json.dumps(record))
    capsys.readouterr()
    assert main(["validate", str(tmp_path / "shipped.json")]) == 1  # a failed validation
    assert "  - incompatible checkpoint" in capsys.readouterr().err


def test_train_tdmpc_runs_and_refuses_to_overwrite(capsys, tmp_path):
    out = tmp_path / "tdmpc"
    argv = ["train-tdmpc", "--steps", "200", "--eval-every", "200", "--out", str(out)]
    assert main([*argv, "--checkpoint-every", "100"]) == 0
    assert "trained 200 steps" in capsys.readouterr().out
    assert (out / "agent.pt").exists() and (out / "log.csv").exists()
    assert main(argv) == 2
    assert "pass --resume" in capsys.readouterr().err


def test_an_option_a_task_does_not_take_is_one_clear_line(capsys):
    assert main(["groups", "toy", "--data-root", "/nowhere"]) == 2
    _one_error_line(capsys, "task 'toy' takes no option 'data_root'")


def test_lsq_ridge_flag_reaches_the_environment_and_is_checked(capsys):
    from prunegym.agents import Result

    argv = ["evaluate", "toy", "--coefficients", "0.3", "--compensation", "lsq",
            "--criterion", "lsq", "--json"]  # fmt: skip
    assert main([*argv, "--lsq-ridge", "0.5"]) == 0
    strong = Result.from_json(capsys.readouterr().out)
    assert strong.env_options["lsq_ridge"] == 0.5 and strong.compensation == "lsq"
    assert main(argv) == 0
    default = Result.from_json(capsys.readouterr().out)
    assert default.env_options["lsq_ridge"] == 0.01
    assert strong.metric != default.metric  # the ridge changed the refit
    assert main([*argv, "--lsq-ridge", "0"]) == 2
    _one_error_line(capsys, "lsq_ridge must be a finite number > 0")


def test_train_policy_checks_its_arguments_before_training(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    for argv, message in (
        (["--out", str(afile / "p.pt")], "is a file, not a folder"),
        (["--out", str(tmp_path)], "is a folder; give a file name"),
        (["--out", str(tmp_path / "p.pt"), "--seed", "-1"], "--seed >= 0"),
        (["--out", str(tmp_path / "p.pt"), "--tensorboard", str(afile)], "is a file, not a folder"),
        (["--out", "/proc/prunegym-policy.pt"], "cannot be written"),
    ):
        assert main(["train-policy", "--tasks", "toy", "--generations", "1", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [err[0]] and err[0].startswith("prunegym: error:") and message in err[0]
    assert not (tmp_path / "p.pt").exists()
