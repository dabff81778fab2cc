import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_watch_reward_runs_and_saves_its_picture(tmp_path, capsys):
    example = _load("watch_reward")
    plot = tmp_path / "grid.png"
    example.main(example.Args(plot=str(plot)))
    out = capsys.readouterr().out
    assert "5 groups" in out and "only encoder-decoder 1" in out
    rewards = [float(line.split()[1]) for line in out.splitlines() if line[:5].strip()[:1] == "0"]
    assert len(rewards) == 7 and max(rewards) == rewards[2]  # c = 0.2 is closest to the target
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_own_optimizer_example_is_short_and_feasible(capsys):
    import inspect

    example = _load("own_optimizer")
    source = inspect.getsource(example.OnePlusOne).strip().splitlines()
    assert len(source) <= 20  # "any optimizer in under 20 lines"
    example.main("toy", generations=15)  # stops by itself: no budget given
    out = capsys.readouterr().out
    assert "feasible True, " in out
    evaluations = int(out.split("feasible True, ")[1].split()[0])
    assert 1 <= evaluations <= 15  # repeated masks come from the cache, free


def test_own_task_example_checks_and_solves(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # it trains once and saves digits_mlp.pt here
    example = _load("own_task")
    example.main()
    out = capsys.readouterr().out
    dense = float(out.split("dense accuracy ")[1].split(",")[0])
    pruned = float(out.split("fd-momentum: accuracy ")[1].split()[0])
    assert dense > 0.9 and "feasible True" in out and pruned > 0.5
    assert (tmp_path / "digits_mlp.pt").exists()


def test_reproduce_table6_prints_every_row(tmp_path, capsys):
    example = _load("reproduce_table6")
    args = example.Args(task="toy", grid_points=4, out_dir=str(tmp_path), progress=False)
    results = example.main(args)
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "solver" not in line]
    assert len(rows) == 2 * 5 + 1 + 2 * 2  # 5 solvers x 2 setups, TP at 20 %, FD+TP at 40/60 %
    assert "the paper kept 252" in out
    assert {r.solver for r in results} == {
        "grid", "fd-momentum", "random", "norm", "uniform", "torch-pruning"
    }  # fmt: skip
    assert (tmp_path / "results.json").exists()


def test_learned_policy_example_answers_every_target(capsys):
    example = _load("learned_policy")
    rows = example.main(example.Args(task="toy", steps=150, progress=False))
    assert [round(r["target"], 2) for r in rows] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert all(len(r["coefficients"]) == 5 for r in rows)


def test_compensation_table_runs_every_row_and_states_the_goals(tmp_path, capsys):
    example = _load("compensation_table")
    argv = ["--tasks", "toy", "--targets", "0.3", "--budget", "20", "--json",
            str(tmp_path / "table.json")]  # fmt: skip
    tables = example.main(argv)
    rows = [row["row"] for row in tables["toy"]]
    assert rows[:5] == [f"torch-pruning {c}" for c in ("magnitude", "lamp", "taylor", "hessian",
                                                       "fpgm")]  # fmt: skip
    assert "fd-momentum lsq + lsq" in rows and "uniform compensated + mean" in rows
    assert "fd-momentum from torch-pruning l2 + none" in rows
    assert len(rows) == 5 + 12 and (tmp_path / "table.json").exists()
    out = capsys.readouterr().out
    assert "best FD momentum − best Torch-Pruning criterion" in out
    assert all(row["step_seconds"] > 0 for row in tables["toy"][5:])


def test_leave_one_out_scores_noisy_tasks_on_the_asked_test_episodes():
    example = _load("leave_one_out")
    assert example._held_out_env("tdmpc-pendulum", 7).task.test_episodes == 7
    assert example._held_out_env("toy", 7).task.test_episodes == 0  # deterministic: none
    searched = example._held_out_env("tdmpc-pendulum", 7, search_episodes=3).task
    assert len(searched.runner.seeds) == 3 and searched.test_episodes == 7
    assert len(example._held_out_env("tdmpc-pendulum", 7).task.runner.seeds) == 8


def test_anchors_pair_pruned_results_only_when_scored_on_the_same_episodes(tmp_path):
    import dataclasses

    import pytest

    from prunegym.agents import make_agent
    from prunegym.envs.prune_env import PruneEnv

    example = _load("tdmpc_anchors")
    result = make_agent("uniform", progress=False).run(PruneEnv("toy", target=0.3))
    result.save(tmp_path / "toy.json")
    with pytest.raises(SystemExit, match="needs a tdmpc-pendulum result scored on 4 test"):
        example._pruned_returns(str(tmp_path / "toy.json"), 4)
    scored = dataclasses.replace(result, task="tdmpc-pendulum", test_values=[-150.0, -160.0])
    scored.save(tmp_path / "scored.json")
    with pytest.raises(SystemExit, match="with 2"):
        example._pruned_returns(str(tmp_path / "scored.json"), 4)
    label, returns = example._pruned_returns(str(tmp_path / "scored.json"), 2)
    assert returns.tolist() == [-150.0, -160.0] and label == "pruned 30%, `uniform`"
    (tmp_path / "out").mkdir()  # what `solve --out DIR` writes
    scored.save(tmp_path / "out" / "result.json")
    assert example._pruned_returns(str(tmp_path / "out"), 2)[1].tolist() == [-150.0, -160.0]
    with pytest.raises(SystemExit, match="no result file"):
        example._pruned_returns(str(tmp_path), 2)


def test_sb3_transfer_trains_on_one_task_and_answers_on_another(capsys, tmp_path):
    example = _load("sb3_transfer")
    example.main(["--train", "toy", "--tasks", "toy,mnist-classifier", "--steps", "64",
                  "--targets", "0.3,0.5"])  # fmt: skip
    out = capsys.readouterr().out
    assert "PPO trained on toy: 64 steps" in out  # one rollout of 64 (SB3 runs whole ones)
    rows = [line for line in out.splitlines() if line.startswith("| PPO")]
    assert [row.split(" | ")[0] for row in rows] == ["| PPO (trained here)", "| PPO (zero-shot)"]
    header = [line for line in out.splitlines() if line.startswith("mnist-classifier (")]
    assert len(header) == 1 and header[0].endswith("; 2 groups):")
    for row in rows:  # two targets, both inside the window (the hard budget sees to it)
        cells = row.strip(" |").split(" | ")[1:]
        assert len(cells) == 2 and not any(cell.endswith("*") for cell in cells)
    assert not (tmp_path / "sb3-logs").exists()  # no empty SB3 log folder (conftest's SB3_LOGDIR)


def test_leave_one_out_plots_test_means_with_their_intervals(tmp_path):
    import dataclasses

    from prunegym.agents import make_agent
    from prunegym.envs.prune_env import PruneEnv

    example = _load("leave_one_out")
    result = make_agent("uniform", progress=False).run(PruneEnv("toy", target=0.3))
    assert example._point(result) == (result.sparsity, result.metric, 0.0)
    assert example._score(result) == f"{result.metric:.4g}"
    noisy = dataclasses.replace(
        result, test_values=[-150.0, -160.0],
        test_metrics={result.metric_name: -155.0, f"{result.metric_name}_ci95": 9.8},
    )  # fmt: skip
    assert example._point(noisy) == (result.sparsity, -155.0, 9.8)
    assert example._score(noisy) == "-155.0 ± 9.8"
    worse = result.metric - result.dense_metric  # mse: lower is better, so this is a loss
    assert example._versus_dense(result, -1.0) == f"{-worse:+.3g}" and worse > 0
    paired = dataclasses.replace(noisy, dense_test_values=[-152.0, -154.0])  # returns
    assert example._versus_dense(paired, 1.0) == "-2.0 ± 50.8"  # +2 and −6: t₁ = 12.7, s.e. 4


def test_correction_strength_counts_wins_per_strength_and_names_a_missing_policy(
    tmp_path, capsys, far_policy
):
    import pytest

    from prunegym.agents.learned_policy import save_policy

    example = _load("correction_strength")
    argv = ["--tasks", "diffusion-sorption", "--seeds", "0", "--out", str(tmp_path)]
    argv += ["--targets", "0.1,0.3,0.5,0.7", "--strengths", "0,1"]
    with pytest.raises(SystemExit):
        example.main(argv)
    assert "no policy" in capsys.readouterr().err
    save_policy(far_policy, tmp_path / "without-diffusion-sorption-seed0-g150.pt", {})
    example.main(argv)
    out = capsys.readouterr().out.splitlines()
    row = next(line for line in out if line.startswith("| diffusion-sorption | 0 |"))
    prior_alone, corrected = (cell.strip() for cell in row.split("|")[3:5])
    assert prior_alone == "3/4"  # the prior loses to `uniform` at 10 % only
    assert corrected != prior_alone  # this correction changes which targets it wins
    assert out[-1].replace(" ", "") == f"|all||{prior_alone[0]}|{corrected[0]}|"


def test_zoo_transfer_counts_the_policy_s_answers_against_the_prior_s(monkeypatch):
    import numpy as np
    import torch

    from prunegym.agents.allocation import lamp_answer
    from prunegym.agents.learned_policy import SetPolicy

    example = _load("zoo_transfer")
    envs = example.zoo_envs([2], "test")  # a convnet: no group holds most parameters
    with torch.random.fork_rng(devices=[]):  # the same policy whatever ran before
        torch.manual_seed(3)
        far_policy = SetPolicy(hidden=8)  # a large correction, other in every group
        torch.nn.init.normal_(far_policy.decide[-1].weight, 0.0, 3.0)
    moved = example.against_prior(far_policy, envs)
    assert moved["better"] + moved["worse"] > 0 and np.isfinite(moved["relative"])
    monkeypatch.setattr(  # a policy that answers as the prior does: every target a tie
        example, "propose", lambda policy, core, targets: [lamp_answer(core, t) for t in targets]
    )
    assert example.against_prior(far_policy, envs) == {"better": 0, "worse": 0, "relative": 0.0}


def test_zoo_imitation_fits_the_correction_toward_the_searched_allocations():
    import numpy as np

    from prunegym.agents.learned_policy import SetPolicy, observations

    example = _load("zoo_transfer")
    envs = example.zoo_envs([2], "test")
    policy = example.imitate(envs, refine=4, steps=30, seed=0)
    assert isinstance(policy, SetPolicy) and not policy.training
    inputs = observations(envs["zoo-2"].unwrapped, np.array(example.TARGETS))
    correction = (policy(*inputs) / (inputs[1] + 0.01)).log().detach().numpy()
    assert np.ptp(correction, axis=1).max() > 1e-3  # no longer the untrained prior


def test_screen_zoo_counts_zero_shot_answers_and_the_best_of_the_screens_eight(monkeypatch):
    import numpy as np

    from prunegym.agents.learned_policy import load_policy
    from prunegym.agents.policy_screen import screen_candidates
    from prunegym.envs.prune_env import PruneEnv
    from prunegym.tasks import make_task

    example = _load("screen_zoo")
    monkeypatch.setattr(example, "TARGETS", (0.3, 0.6))
    counts = example.tally([2], load_policy())  # a convnet
    assert counts["lamp"][1:3] == [0, 0]  # lamp against itself: no difference
    assert all(0 <= value <= 2 for row in counts.values() for value in row)
    assert counts[example.BEST][2:] == [0, 2]  # lamp is among the eight; the best is the best
    env = PruneEnv(make_task("zoo", seed=2), granularity="channel")
    env.reset(options={"target": 0.3})
    rows = example.answers(env, load_policy(), 0.3)
    alone = screen_candidates(env, rows["lamp"], 0.3)[1:]  # the prior and its blends
    chosen = alone[np.argmin(env.calibration_distortion(alone))]
    assert np.array_equal(rows["screen without the policy"], chosen)
    eight = env.unwrapped.evaluate_batch(screen_candidates(env, rows["policy"], 0.3))
    best = max(-info["metric"] for info in eight if info["feasible"])  # a loss: lower is better
    assert example.best_of_the_eight(env, rows["policy"], 0.3) == best


def test_refine_proposals_counts_both_refinements_against_random_search(
    monkeypatch, capsys, tmp_path
):
    example = _load("refine_proposals")
    monkeypatch.setattr(example, "ZOO_TARGETS", (0.3,))
    argv = ["refine_proposals.py", "--zoo", "2-3", "--tasks", "", "--refine", "4", "--proposals",
            "3"]  # fmt: skip
    monkeypatch.setattr("sys.argv", argv)
    example.main()
    out = capsys.readouterr().out
    rows = [line.split("|")[2:5] for line in out.splitlines() if line.startswith("| proposals=")]
    assert len(rows) == 2 and all(sum(int(cell) for cell in row) == 1 for row in rows)
    assert "proposals=3 against proposals=1: better in" in out
    missing = ["refine_proposals.py", "--zoo", "", "--tasks", "toy", "--out", str(tmp_path)]
    monkeypatch.setattr("sys.argv", missing)
    with pytest.raises(SystemExit, match="no policy trained without toy"):
        example.main()


def test_screen_on_training_tasks_prints_screened_minus_unscreened_and_the_choice(
    monkeypatch, capsys
):
    from prunegym.agents import make_agent
    from prunegym.envs.prune_env import PruneEnv

    example = _load("screen_on_training_tasks")
    monkeypatch.setattr("sys.argv", ["screen_on_training_tasks.py", "--tasks", "toy",
                                     "--targets", "0.5"])  # fmt: skip
    example.main()
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| toy")]
    env = PruneEnv("toy", target=0.5)
    screened = make_agent("learned-policy", screen=True, progress=False).run(env)
    env.reset()
    unscreened = make_agent("learned-policy", screen=False, progress=False).run(env)
    gain = unscreened.metric - screened.metric  # mse: lower is better
    shown = f"{gain:+.3g}" if gain else "0"
    assert rows == [f"| toy (mse) | {shown} ({screened.details['screen']['chosen']}) |"]
    monkeypatch.setattr("sys.argv", ["screen_on_training_tasks.py", "--tasks", "zoo"])
    with pytest.raises(SystemExit):
        example.main()
    assert "--tasks zoo: not a training task" in capsys.readouterr().err
