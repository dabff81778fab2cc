"""Solver specs with settings: ``learned-policy:refine=50`` wherever a solver name goes."""

import json

import pytest

from prunegym.agents import agent_names, baseline_names, make_agent, prunes_its_own_model
from prunegym.agents.specs import split_solver_list, split_solver_spec
from prunegym.cli.main import main


@pytest.mark.parametrize(
    ("spec", "name", "settings"),
    [
        ("fd-momentum", "fd-momentum", {}),
        ("mysolver:MySolver", "mysolver:MySolver", {}),
        ("learned-policy:refine=50", "learned-policy", {"refine": 50}),
        (
            "learned-policy:refine=50,search=fd-momentum,policy=/runs/a:b.pt",
            "learned-policy",
            {"refine": 50, "search": "fd-momentum", "policy": "/runs/a:b.pt"},
        ),
        ("mysolver:MySolver:warm-start=true", "mysolver:MySolver", {"warm_start": True}),
        ("grid:values=[0.1,0.2]", "grid", {"values": [0.1, 0.2]}),
    ],
)
def test_a_spec_splits_into_its_solver_and_settings(spec, name, settings):
    assert split_solver_spec(spec) == (name, settings)


def test_a_solver_list_keeps_each_specs_settings_together():
    text = "random, learned-policy:refine=50,search=local,mysolver:MySolver,uniform"
    assert split_solver_list(text) == [
        "random", "learned-policy:refine=50,search=local", "mysolver:MySolver", "uniform"
    ]  # fmt: skip
    assert split_solver_list(" , ") == []


def test_make_agent_applies_a_specs_settings_and_keeps_its_name():
    agent = make_agent("learned-policy:refine=7,sigma=0.1")
    assert (agent.refine, agent.sigma, agent.name) == (7, 0.1, "learned-policy:refine=7,sigma=0.1")
    assert make_agent("learned-policy:refine=7", refine=3).refine == 3  # explicit options win
    with pytest.raises(ValueError, match="bad option for solver 'learned-policy'.*refin") as error:
        make_agent("learned-policy:refin=7")
    assert "it takes policy, refine, search, sigma, batch" in str(error.value)
    assert prunes_its_own_model("torch-pruning:importance=taylor")
    assert not prunes_its_own_model("learned-policy:refine=7")


def test_solve_takes_a_spec_and_reports_a_bad_setting_in_one_line(capsys):
    assert main(["solve", "toy", "--solver", "learned-policy:refine=4", "--target", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "solver: learned-policy:refine=4" in out and "evaluations  5 in" in out
    assert main(["solve", "toy", "--solver", "learned-policy:refine=many"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("prunegym: error: solver 'learned-policy:refine=many' option")
    assert err[-1].endswith("refine='many': must be an integer")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--option", "seed=3"], "seed is set by --seed, not as a solver setting"),
        (["--option", "progress=false"], "progress is set by --no-progress"),
        (["--solver", "learned-policy:refine=2,seed=3"], "seed is set by --seed"),
        (["--solver", "learned-policy:refine=2,refine=3"], "sets 'refine' twice"),
        (["--solver", "learned-policy:refine=2", "--option", "refine=3"], "set both by --solver"),
        (["--option", "refine=2", "--option", "refine=3"], "--option refine is given twice"),
    ],
)
def test_solve_refuses_settings_given_twice_or_owned_by_a_flag_in_one_line(argv, message, capsys):
    command = ["solve", "toy", "--target", "0.3", "--solver", "learned-policy", *argv]
    assert main(command) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("prunegym: error: ") and message in err[0]


def test_bench_refuses_a_solver_seed_and_names_its_flag(tmp_path, capsys):
    command = ["bench", "--tasks", "toy", "--solvers", "uniform:seed=2", "--targets", "0.3",
               "--seeds", "1", "--no-baselines", "--out", str(tmp_path)]  # fmt: skip
    assert main(command) == 2
    assert "seed is set by --seeds" in capsys.readouterr().err
    command[command.index("uniform:seed=2")] = "uniform"  # a baseline bench adds itself
    assert main([*command, "--option", "torch-pruning-l1:seed=3"]) == 2
    assert "seed is set by --seeds, not as a solver setting ('torch-pruning-l1')" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize("name", agent_names() + baseline_names())
def test_every_solver_is_built_again_from_the_settings_its_results_record(name):
    if name in ("ppo", "sac", "td3"):
        pytest.importorskip("stable_baselines3")
    if name.startswith("optuna"):
        pytest.importorskip("optuna")
    recorded = json.loads(json.dumps(make_agent(name, progress=False).settings()))
    again = make_agent(name, progress=False, **recorded)  # as a replay or a bench resume does
    assert json.loads(json.dumps(again.settings())) == recorded
