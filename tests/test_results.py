"""Result files: provenance, compatibility checks, re-running solvers, shipped examples."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from other_cpu import OTHER_CPU

from prunegym.cli.main import main

RESULTS = Path(__file__).parents[1] / "examples" / "results"
EXAMPLES = sorted(RESULTS.glob("*.json"))
TDMPC_EXAMPLE = RESULTS / "tdmpc-pendulum_fd-momentum_20.json"


def test_a_result_records_where_it_came_from(toy_env):
    from prunegym.agents import Result, make_agent

    agent = make_agent("fd-momentum", progress=False, seed=7, momentum=0.8)
    result = agent.run(toy_env, 40)
    assert result.weights_sha256 == toy_env.weights_sha256 and len(result.weights_sha256) == 64
    assert result.seed == 7 and result.budget == {"evaluations": 40, "seconds": None}
    assert result.cache_lookups == result.evaluations + result.cache_hits  # no env-level hits
    assert result.cache_hits > 0  # FD momentum's probes revisit masks; these cost nothing
    assert result.solver_settings["momentum"] == 0.8 and "progress" not in result.solver_settings
    assert result.task_options == {"seed": 0, "samples": 256}
    assert result.env_options == {
        "penalty": 100.0,
        "probes": 8,
        "seed": 0,
        "granularity": "channel",
        "precision": "fp32",
        "bn_recalibration": 0,
        "lsq_ridge": 0.01,
    }
    assert (
        result.costs["params_kept"] + round(result.sparsity * result.costs["params_total"])
        == (result.costs["params_total"])
    )
    assert result.costs["macs"] < result.costs["macs_dense"]
    assert result.device == "cpu" and result.device_name == toy_env.device_name != ""
    assert result.groups[0] == "0 encoder 1" and len(result.groups) == len(result.coefficients)
    estimate = toy_env.sparsity_estimate_of(np.asarray(result.coefficients))
    assert result.sparsity_estimate == pytest.approx(float(estimate))
    assert result.sparsity_estimate != result.sparsity
    assert {"python", "prunegym", "torch", "torch-pruning"} <= set(result.versions)
    assert result.versions["torch"].startswith("2.") and result.machine["cores"] >= 1
    assert Result.from_json(result.to_json()) == result


def test_weights_hash_follows_the_weights_not_the_object():
    from prunegym.tasks import make_task
    from prunegym.tasks.base import weights_sha256

    task = make_task("toy")
    first, second = task.build_model(), task.build_model()
    assert weights_sha256(first) == weights_sha256(second)
    with np.errstate(all="ignore"):
        first.encoder[0].weight.data[0, 0] += 1e-7
    assert weights_sha256(first) != weights_sha256(second)
    assert weights_sha256(make_task("toy", seed=1).build_model()) != weights_sha256(second)


def test_a_result_from_other_weights_is_a_clear_error(tmp_path, capsys):
    from prunegym.agents import Result
    from prunegym.results.replay import IncompatibleResult, environment_for

    run = tmp_path / "run"
    assert main(["solve", "toy", "--solver", "uniform", "--target", "0.3", "--out", str(run)]) == 0
    record = json.loads((run / "result.json").read_text())
    record["task_options"]["seed"] = 1  # the same architecture, other weights
    other = tmp_path / "other.json"
    other.write_text(json.dumps(record))
    with pytest.raises(IncompatibleResult, match="incompatible checkpoint"):
        environment_for(Result.load(other))
    capsys.readouterr()
    assert main(["validate", str(other)]) == 1  # validation fails, naming the weights
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2].startswith("prunegym: validation failed") and "other.json" in err[-2]
    assert err[-1].startswith("  - incompatible checkpoint") and "sha256" in err[-1]
    assert main(["export", str(other), "--out", "m.pt2"]) == 2  # nothing to export
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("prunegym: error: incompatible checkpoint") and "sha256" in err
    record["weights_sha256"] = ""
    other.write_text(json.dumps(record))
    assert main(["validate", str(other)]) == 2
    assert "records no weights_sha256" in capsys.readouterr().err


def test_torch_pruning_results_validate_by_re_running_the_solver(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["solve", "toy", "--solver", "torch-pruning", "--target", "0.3", "--tolerance", "0.05"]
    assert main([*argv, "--out", str(run)]) == 0
    assert main(["validate", str(run / "result.json")]) == 0
    assert "re-running it" in capsys.readouterr().err
    record = json.loads((run / "result.json").read_text())
    record["metric"] *= 2
    (run / "tampered.json").write_text(json.dumps(record))
    assert main(["validate", str(run / "tampered.json")]) == 1
    assert "mse is" in capsys.readouterr().err


def test_rerun_solver_reproduces_a_seeded_random_search(toy_env):
    from prunegym.agents import make_agent
    from prunegym.results.replay import rerun_solver

    first = make_agent("random", progress=False, seed=5, samples=9).run(toy_env)
    _, again = rerun_solver(first, toy_env)
    assert again.coefficients == first.coefficients and again.metric == first.metric
    other = make_agent("random", progress=False, seed=6, samples=9).run(toy_env)
    assert other.coefficients != first.coefficients


def test_examples_ship_results(capsys):
    assert {path.name for path in EXAMPLES} >= {
        "mnist-ae_fd-momentum_20.json",
        "mnist-ae_torch-pruning_20.json",
        "tdmpc-pendulum_fd-momentum_20.json",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_shipped_example_results_validate(path, capsys):
    assert main(["validate", str(path)]) == 0
    assert f"validated {path}" in capsys.readouterr().out


def test_shipped_results_validate_with_another_cpus_float_kernels():
    """Results hold on another machine: validate every shipped result in a process whose
    float kernels are another CPU's (``OTHER_CPU``). The TD-MPC replay really takes other
    trajectories there (its search return differs from the record) and still validates."""
    env = {**os.environ, **OTHER_CPU, "PYTHONWARNINGS": "ignore"}
    for path in EXAMPLES:
        run = subprocess.run(
            [sys.executable, "-m", "prunegym.cli.main", "validate", str(path)],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-2000:]
        line = next(x for x in run.stdout.splitlines() if x.startswith("validated"))
        replayed, recorded = line.split(" (recorded ")
        if path == TDMPC_EXAMPLE:
            assert replayed.split()[-1] != recorded.split(")")[0]
            assert "test episodes: return" in run.stdout


def test_a_tampered_closed_loop_result_fails_and_names_each_change(tmp_path, capsys):
    record = json.loads(TDMPC_EXAMPLE.read_text())
    record["metric"] -= 3 * record["metrics"]["return_ci95"]
    record["test_metrics"]["return"] += 3 * record["test_metrics"]["return_ci95"]
    record["coefficients"][4] = min(0.95, record["coefficients"][4] + 0.2)
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(record))
    assert main(["validate", str(tampered)]) == 1
    err = capsys.readouterr().err
    assert "  - search return is" in err and "  - test return is" in err
    assert "further apart than the two 95 % intervals" in err and "  - sparsity is" in err
    assert "dense" not in err  # the dense model was not touched
    record = json.loads(TDMPC_EXAMPLE.read_text())
    record["task_options"]["checkpoint"] = str(tmp_path / "other.pt")
    other = torch_save_other_tdmpc_weights(tmp_path / "other.pt")
    (tmp_path / "other.json").write_text(json.dumps(record))
    assert other and main(["validate", str(tmp_path / "other.json")]) == 1
    assert "  - incompatible checkpoint" in capsys.readouterr().err


def torch_save_other_tdmpc_weights(path: Path) -> Path:
    """The shipped TD-MPC checkpoint with one weight changed."""
    import torch

    from prunegym.tasks.tdmpc_pendulum import default_checkpoint

    state = torch.load(default_checkpoint(), weights_only=True)
    state["model"]["pi_head.0.weight"][0, 0] += 0.01
    torch.save(state, path)
    return path
