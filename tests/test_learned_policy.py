"""The learned pruning policy: any number of groups, answers in the window without searching,
refinement, the shipped file, training with TensorBoard logs."""

from __future__ import annotations

import json
import math
import warnings
from importlib import resources

import numpy as np
import pytest
import torch

from prunegym.agents import make_agent
from prunegym.agents.allocation import _channel_moves, lamp_allocation, scale_to_target
from prunegym.agents.learned_policy import (
    CORRECTION_SPAN,
    PRIOR_FLOOR,
    SetPolicy,
    feature_layout,
    load_policy,
    propose,
    save_policy,
)
from prunegym.agents.policy_training import centred_ranks, train_policy
from prunegym.agents.session import NotApplicable
from prunegym.cli.main import main
from prunegym.envs.prune_env import PruneEnv


def test_set_policy_serves_any_number_of_groups_and_ignores_their_order():
    torch.manual_seed(0)
    untrained, policy = SetPolicy(hidden=8), SetPolicy(hidden=8)
    for parameter in policy.parameters():  # away from the untrained output (the prior)
        parameter.data.normal_(0, 0.5)
    for groups in (2, 5, 15):
        rows, prior, context = torch.rand(3, groups, 15), torch.rand(3, groups), torch.rand(3, 6)
        torch.testing.assert_close(untrained(rows, prior, context), prior + PRIOR_FLOOR)
        directions = policy(rows, prior, context)
        assert directions.shape == (3, groups)
        correction = directions / (prior + PRIOR_FLOOR)
        assert not torch.allclose(correction, torch.ones_like(correction))
        assert bool((correction.log().abs() <= CORRECTION_SPAN + 1e-5).all())
        torch.testing.assert_close(policy(rows, prior, context, strength=0.0), prior + PRIOR_FLOOR)
        half = policy(rows, prior, context, strength=0.5) / (prior + PRIOR_FLOOR)
        torch.testing.assert_close(half, correction.sqrt())  # κ scales the log-correction
        shuffle = torch.randperm(groups)
        torch.testing.assert_close(
            policy(rows[:, shuffle], prior[:, shuffle], context), directions[:, shuffle]
        )


def test_lamp_allocation_masks_below_one_global_threshold_and_lands_on_the_target(mnist_env):
    targets = np.array([0.1, 0.2, 0.45, 0.7])  # 0.1, 0.2: inside a tie of dead channels
    rows = lamp_allocation(mnist_env, targets)
    assert np.all(np.abs(mnist_env.sparsity_of(rows) - targets) <= mnist_env.tolerance)
    keys = []
    for group, scores in zip(mnist_env.groups, mnist_env.pruner.scores, strict=True):
        values = np.sort(scores.double().numpy().clip(0.0))  # compensated scores: >= 0
        tail = np.cumsum(values[::-1])[::-1]
        keys.append(np.divide(values, tail, out=np.zeros_like(values), where=tail > 0)
                    * group.channels / group.parameters)  # fmt: skip
    for counts in mnist_env.pruned_counts(rows):
        masked = np.concatenate([k[:n] for k, n in zip(keys, counts, strict=True)])
        kept = np.concatenate([k[n:] for k, n in zip(keys, counts, strict=True)])
        assert masked.max(initial=0.0) <= kept.min() * (1 + 1e-9)  # one threshold for all
    with pytest.raises(NotApplicable, match="channel"):
        make_agent("lamp", progress=False).run(PruneEnv("toy", granularity="weight"))
    lamp, shared_target = make_agent("lamp", progress=False), mnist_env.target
    try:
        for target in (0.1, 0.45):
            mnist_env.reset(options={"target": target})
            result = lamp.run(mnist_env)
            assert result.feasible and result.evaluations == 1
    finally:
        mnist_env.reset(options={"target": shared_target})


def test_scale_to_target_lands_every_direction_in_the_window_without_evaluating():
    env = PruneEnv("toy", tolerance=0.01)
    rng = np.random.default_rng(0)
    directions = rng.uniform(0.01, 1.0, (40, len(env.groups)))
    targets = rng.uniform(0.1, 0.8, 40)
    lookups = env.cache_lookups
    coefficients = scale_to_target(env, directions, targets)
    assert env.cache_lookups == lookups  # counted, not evaluated
    assert np.all(np.abs(env.sparsity_of(coefficients) - targets) <= 0.01)
    assert np.all((coefficients >= 0) & (coefficients <= 0.95))


def test_scale_to_target_repairs_rows_whose_last_channel_is_too_coarse_for_the_window():
    tight, loose = PruneEnv("toy", tolerance=0.003), PruneEnv("toy", tolerance=0.5)  # 0.5: none
    rng = np.random.default_rng(0)
    directions = rng.uniform(0.0, 1.0, (100, len(tight.groups))) ** 6  # lopsided directions
    targets = rng.uniform(0.1, 0.8, 100)
    gaps = [
        np.abs(env.sparsity_of(scale_to_target(env, directions, targets)) - targets)
        for env in (tight, loose)
    ]
    assert np.all(gaps[0] <= gaps[1] + 1e-12)  # a repair is kept only where it is nearer
    assert (gaps[0] <= 0.003).sum() > (gaps[1] <= 0.003).sum()  # and it lands more in the window


def test_scale_to_target_walks_one_channel_at_a_time_onto_a_window_the_scaling_misses():
    env = PruneEnv("toy", tolerance=0.005)
    channels = np.asarray(env.channels)
    # 0.0263: the only allocation in 0.02 ± 0.005 is one channel of the last group (0.0159),
    # two moves away, through allocations farther from the target than the start
    start = np.array([[0, 0, 1, 1, 0]]) / channels
    walked = _channel_moves(env, start, np.array([0.02]))
    np.testing.assert_array_equal(env.pruned_counts(walked), [[0, 0, 0, 0, 1]])
    targets = np.round(np.arange(0.02, 0.94, 0.01), 2)  # each window here holds an allocation
    rows = scale_to_target(env, lamp_allocation(env, targets), targets)
    assert np.all(np.abs(env.sparsity_of(rows) - targets) <= 0.005)
    unreachable = _channel_moves(PruneEnv("toy", tolerance=0.001), start, np.array([0.005]))
    np.testing.assert_array_equal(unreachable, np.zeros_like(start))  # the nearest: dense


def test_the_policy_s_answer_walks_onto_tight_windows_that_hold_an_allocation():
    env = PruneEnv("toy", tolerance=0.001)
    targets = np.array([0.06, 0.075, 0.1, 0.135])  # 64 moves, 16 without progress, miss them
    answers = propose(load_policy(), env, targets)
    assert np.all(np.abs(env.sparsity_of(answers) - targets) <= 0.001)


def test_the_shipped_policy_answers_mnist_ae_in_the_window_with_no_search(capsys):
    # how long it takes: python benchmarks/learned_policy_latency.py (no timed test)
    assert main(["solve", "mnist-ae", "--solver", "learned-policy", "--target", "0.35",
                 "--json", "--no-progress"]) == 0  # fmt: skip
    from prunegym.agents import Result

    result = Result.from_json(capsys.readouterr().out)
    assert result.feasible and abs(result.sparsity - 0.35) <= 0.01
    assert result.evaluations == 1  # the answer itself; no search
    policy = load_policy()
    assert policy.hidden > 0


@pytest.mark.parametrize("search", ["local", "fd-momentum"])
def test_refine_spends_at_most_its_evaluations_and_never_ends_worse(search):
    env = PruneEnv("mnist-ae", target=0.5)
    answer = make_agent("learned-policy", progress=False).run(env)
    refined = make_agent("learned-policy", refine=30, search=search, progress=False).run(env)
    assert 1 < refined.evaluations <= 31
    assert refined.feasible and refined.metric >= answer.metric - 1e-9
    assert np.allclose(refined.history[0]["coefficients"], answer.coefficients)  # started there
    for refine in (-1, 2.5, "abc", True):
        with pytest.raises(ValueError, match=r"refine\S* must be an integer"):
            make_agent("learned-policy", refine=refine)
    with pytest.raises(ValueError, match="sigma='wide': must be a finite number"):
        make_agent("learned-policy", sigma="wide")
    with pytest.raises(ValueError, match="sigma must be > 0 and batch"):
        make_agent("learned-policy", sigma=-0.1)
    with pytest.raises(ValueError, match="search"):
        make_agent("learned-policy", search="annealing")


def test_refinement_evaluates_the_prior_so_a_correction_that_hurts_costs_one_evaluation(
    tmp_path, far_policy
):
    path = tmp_path / "bad.pt"
    save_policy(far_policy, path, {})
    env = PruneEnv("toy", target=0.5)
    prior = make_agent("lamp", progress=False).run(env)
    unscreened = {"policy": path, "screen": False, "progress": False}  # the answer as it is
    answer = make_agent("learned-policy", **unscreened).run(env)
    assert answer.metric > prior.metric  # this correction hurts (mse: lower is better)
    refined = make_agent("learned-policy", refine=1, **unscreened).run(env)
    assert refined.evaluations == 2
    assert np.array_equal(refined.history[1]["coefficients"], prior.coefficients)
    assert refined.metric == pytest.approx(prior.metric, rel=1e-6)


def test_local_search_moves_from_the_best_metric_in_the_window_not_the_best_reward():
    env = PruneEnv("toy", target=0.4)  # mse ~1e-6: the reward's distance penalty dominates
    agent = make_agent("learned-policy", refine=1, screen=False, progress=False)
    result = agent.run(env)
    answer, prior = result.history[0], result.history[1]
    assert abs(answer["sparsity"] - 0.4) < abs(prior["sparsity"] - 0.4)  # the answer is nearer
    assert answer["reward"] > prior["reward"] and prior["metric"] < answer["metric"]
    assert np.array_equal(agent.best, prior["coefficients"])  # the search goes on from there
    assert np.array_equal(result.coefficients, prior["coefficients"])


def test_local_refinement_widens_its_steps_while_it_only_revisits_evaluated_masks(tmp_path):
    path = tmp_path / "untrained.pt"
    save_policy(SetPolicy(hidden=8), path, {})
    env = PruneEnv("toy", target=0.4)
    tiny = make_agent("learned-policy", policy=path, refine=20, sigma=1e-6, progress=False)
    result = tiny.run(env)  # at first every perturbation masks the answer's channels again
    assert result.solver_settings["policy"] == str(path)  # a Path is recorded as a path
    assert make_agent(result.solver, **result.solver_settings).policy == str(path)
    assert result.evaluations == 21  # the step grew until the masks changed, then spent all
    counts = env.pruned_counts(np.array([h["coefficients"] for h in result.history]))
    assert len({tuple(row) for row in counts}) == 21  # 21 different masks


def test_fd_refinement_counts_only_new_masks_and_warns_when_refine_is_below_one_iteration():
    env = PruneEnv("toy", target=0.4)  # 5 groups: an iteration is 11 rows, the centre cached
    fd = {"search": "fd-momentum", "screen": False, "progress": False}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 11: the prior's and 2m = 10 more; no warning
        fits = make_agent("learned-policy", refine=11, **fd)
        assert fits.run(env).evaluations > 2  # the prior, then an iteration's new masks fit
    with pytest.warns(UserWarning, match=r"refine=10 may be too few .* 2m = 10"):
        make_agent("learned-policy", refine=10, **fd).run(env)
    with pytest.warns(UserWarning, match=r"refine=5 may be too few"):
        short = make_agent("learned-policy", refine=5, **fd)
        assert short.run(env).evaluations == 2  # the answer and the prior, no iteration


def test_a_missing_or_corrupt_policy_file_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="policy file not found"):
        make_agent("learned-policy", policy=str(tmp_path / "none.pt"))
    with pytest.raises(ValueError, match="is a folder; give the file itself"):
        make_agent("learned-policy", policy=str(tmp_path))
    narrow = tmp_path / "narrow.pt"
    torch.save({"format": 2, "hidden": 0, "state_dict": {}}, narrow)
    with pytest.raises(ValueError, match="not a positive integer"):
        make_agent("learned-policy", policy=str(narrow))
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a policy")
    with pytest.raises(ValueError, match="broken.pt is not a PyTorch checkpoint"):
        make_agent("learned-policy", policy=str(broken))
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(ValueError, match="tensor.pt is not a prunegym policy"):
        make_agent("learned-policy", policy=str(tensor))
    shipped = torch.load(
        resources.files("prunegym.assets") / "pruning_policy.pt", weights_only=True
    )
    narrow = tmp_path / "narrow.pt"  # another width than its weights
    torch.save({**shipped, "hidden": 16}, narrow)
    with pytest.raises(ValueError, match="size mismatch for"):
        make_agent("learned-policy", policy=str(narrow))
    nan = tmp_path / "nan.pt"
    torch.save({**shipped, "state_dict": {k: v * np.nan for k, v in shipped["state_dict"].items()}},
               nan)  # fmt: skip
    with pytest.raises(ValueError, match="holds NaN or infinite weights"):
        make_agent("learned-policy", policy=str(nan))
    old = tmp_path / "old.pt"  # format 1: no prior, another input width
    torch.save({"hidden": 8, "state_dict": {}}, old)
    with pytest.raises(ValueError, match=r"format 1, this prunegym reads format 2") as error:
        make_agent("learned-policy", policy=str(old))
    assert "\n" not in str(error.value)
    renamed = tmp_path / "renamed.pt"  # as many features, other ones: refused by name
    layout = feature_layout()
    layout["static"] = ["log_channels_v2", *layout["static"][1:]]
    torch.save({**shipped, "features": layout}, renamed)
    with pytest.raises(ValueError, match="it reads the features .*log_channels_v2") as error:
        make_agent("learned-policy", policy=str(renamed))
    assert "\n" not in str(error.value)
    saved = tmp_path / "saved.pt"
    save_policy(SetPolicy(hidden=4), saved, {})
    assert torch.load(saved, weights_only=True)["features"] == feature_layout()
    assert load_policy(saved).hidden == 4


def test_training_improves_on_the_untrained_start_and_logs_to_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from prunegym.agents.tensorboard import tensorboard_writer

    env = PruneEnv("toy", observation="features")
    writer = tensorboard_writer(str(tmp_path / "tb"), "train-policy")
    policy, history = train_policy({"toy": env}, generations=40, pairs=6, targets_per_task=3,
                                   hidden=8, writer=writer)  # fmt: skip
    writer.close()
    assert [row["generation"] for row in history] == list(range(1, 41))
    assert list((tmp_path / "tb" / "train-policy_1").glob("events.out.tfevents.*"))
    targets = np.array([0.2, 0.4, 0.6])
    trained = propose(policy, env, targets)
    untrained = propose(SetPolicy(hidden=8), env, targets)  # the prior, plus the floor
    scores = {}
    for name, rows in (("trained", trained), ("untrained", untrained)):
        scores[name] = 0.0
        for target, row in zip(targets, rows, strict=True):
            env.target = float(target)
            scores[name] += env.evaluate_batch(row[None])[0]["reward"]
    assert scores["trained"] > scores["untrained"]
    path = tmp_path / "policy.pt"
    save_policy(policy, path, {"generations": 12})
    np.testing.assert_allclose(propose(load_policy(path), env, targets), trained)


def test_training_draws_tasks_per_generation_from_a_pool_and_refuses_a_bad_draw():
    envs = {name: PruneEnv("toy", seed=i, observation="features") for i, name in enumerate("abc")}
    _, history = train_policy(envs, generations=6, pairs=2, targets_per_task=1, hidden=4,
                              tasks_per_generation=2)  # fmt: skip
    drawn = [sorted(name for name in row if name in envs) for row in history]
    assert all(len(names) == 2 for names in drawn)
    assert len({tuple(names) for names in drawn}) > 1  # not the same two every generation
    for draw in (0, 4):
        with pytest.raises(ValueError, match=r"tasks_per_generation must lie in \[1, 3\]"):
            train_policy(envs, generations=1, tasks_per_generation=draw)


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"sigma": 0.0}, r"sigma must be a finite number > 0, got 0.0"),
        ({"learning_rate": math.nan}, r"learning_rate must be a finite number > 0, got nan"),
        ({"pairs": 2.5}, r"pairs must be an integer >= 1, got 2.5"),
        ({"hidden": 0}, r"hidden must be an integer >= 1, got 0"),
        ({"targets_per_task": 0}, r"targets_per_task for 'toy' must be an integer >= 1, got 0"),
        ({"targets_per_task": {"other": 2}}, r"gives no count for the tasks \['toy'\]"),
        ({"target_range": (0.6, 0.2)}, r"target_range must satisfy 0 <= low <= high < 1"),
        ({"target_range": (0.97, 0.98)}, r"task 'toy' cannot reach the lowest target 0.97"),
    ],
)
def test_training_refuses_a_bad_setting_in_one_line_before_it_trains(setting, message):
    env = PruneEnv("toy", observation="features")
    with pytest.raises(ValueError, match=message) as refused:
        train_policy({"toy": env}, **{"generations": 1, "pairs": 1, **setting})
    assert "\n" not in str(refused.value)
    assert env.evaluator.lookups == 0  # nothing was evaluated


def test_centred_ranks_are_ranks_in_minus_a_half_to_a_half_and_ties_cancel():
    ranks = centred_ranks(np.array([3.0, -1.0, 10.0, 0.5]))
    np.testing.assert_allclose(ranks, [1 / 6, -0.5, 0.5, -1 / 6])
    tied = centred_ranks(np.array([2.0, 7.0, 2.0, 7.0]))  # pairs (0, 2) and (1, 3) tie
    assert tied[0] == tied[2] and tied[1] == tied[3]


def test_solve_logs_every_evaluation_to_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = tmp_path / "tb"
    argv = ["solve", "toy", "--solver", "random", "--budget", "7", "--no-progress", "--json",
            "--tensorboard", str(logs)]  # fmt: skip
    for _ in range(2):  # SB3's convention: each run in its own sub-directory, numbered
        assert main(argv) == 0
    assert sorted(path.name for path in logs.iterdir()) == ["random_1", "random_2"]
    events = EventAccumulator(str(logs / "random_2"))
    events.Reload()
    assert {"random/reward", "random/metric", "random/sparsity"} <= set(events.Tags()["scalars"])
    steps = [event.step for event in events.Scalars("random/metric")]
    assert steps == list(range(1, 8))  # one point per evaluation, this run's only


def test_tensorboard_best_metric_is_the_best_in_the_window_so_far(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    argv = ["solve", "toy", "--solver", "fd-momentum", "--target", "0.15", "--budget", "40",
            "--no-progress", "--json", "--tensorboard", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    history = json.loads(capsys.readouterr().out)["history"]
    assert not history[0]["feasible"] and any(entry["feasible"] for entry in history)
    expected, best = {}, math.inf
    for step, entry in enumerate(history, start=1):
        best = min(best, entry["metric"]) if entry["feasible"] else best  # mse: lower is better
        if best < math.inf:
            expected[step] = best
    events = EventAccumulator(str(tmp_path / "fd-momentum_1"))
    events.Reload()
    logged = {e.step: e.value for e in events.Scalars("fd-momentum/best_metric")}
    assert logged.keys() == expected.keys()  # nothing before the first evaluation in the window
    np.testing.assert_allclose(list(logged.values()), list(expected.values()), rtol=1e-6)
    afile = tmp_path / "afile"
    afile.write_text("")
    for folder in (afile / "sub", afile):  # refused before the task is built, in one line
        assert main([*argv[:-1], str(folder)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].endswith(f"{afile} is a file, not a folder")


def test_tensorboard_runs_are_numbered_per_name_in_one_folder_each(tmp_path):
    from prunegym.agents.tensorboard import run_directory

    spec = "learned-policy:policy=runs/p.pt"  # a path in the spec stays one folder name
    first = run_directory(tmp_path, spec)
    assert first.parent == tmp_path and first.name == "learned-policy:policy=runs%2Fp.pt_1"
    first.mkdir()
    (tmp_path / "random_7").mkdir()  # another name's runs do not count
    assert run_directory(tmp_path, spec).name.endswith("p.pt_2")
    assert run_directory(tmp_path, "random").name == "random_8"
    (tmp_path / "random_8").write_text("")  # a file by that name: the run goes past it
    assert run_directory(tmp_path, "random").name == "random_9"
