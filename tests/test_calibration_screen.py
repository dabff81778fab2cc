"""The calibration screen: how far a mask moves the outputs on calibration batches, and the
learned policy's ``screen=true``, which answers with the least distorted of its candidates
without evaluating a metric."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from residual_task import ResidualTask

from prunegym.agents import Result, make_agent
from prunegym.agents.allocation import lamp_answer
from prunegym.agents.learned_policy import load_policy, propose, save_policy
from prunegym.agents.policy_screen import SCREENED, screen_candidates, screens
from prunegym.cli.main import main
from prunegym.envs.evaluation.calibration import CalibrationDistortion
from prunegym.envs.prune_env import PruneEnv
from prunegym.pruning.channel.candidate_masks import CandidateMasks
from prunegym.tasks.toy import ToyTask


def test_calibration_distortion_is_the_output_error_of_the_exported_model():
    env = PruneEnv("toy", target=0.4)
    env.reset()
    rows = np.array([np.zeros(5), np.full(5, 0.3), [0.6, 0.1, 0.0, 0.2, 0.5]])  # five groups
    found = env.calibration_distortion(rows)
    assert found.shape == (3,) and found[0] == 0.0 and found[1] > 0 and found[2] > 0
    dense = env.task.load_model().eval()
    with torch.no_grad():
        for row, value in zip(rows[1:], found[1:], strict=True):
            smaller = env.export(row).eval()  # channels removed physically, biases compensated
            errors = [
                (env.task.forward(smaller, b) - env.task.forward(dense, b)).double().pow(2).mean()
                for b in env.task.calibration_batches()
            ]
            assert value == pytest.approx(float(torch.stack(errors).mean()), rel=1e-4)


def test_a_classifiers_distortion_is_the_kl_divergence_of_its_softmax_from_the_dense_one():
    env = PruneEnv("mnist-classifier", target=0.4)
    assert env.unwrapped.task.output_kind == "logits"
    row = np.array([0.5, 0.3])  # two groups
    found = env.calibration_distortion(row[None])[0]
    dense = env.unwrapped.task.load_model().eval()
    smaller = env.unwrapped.export(row).eval()
    task, divergences, errors = env.unwrapped.task, [], []
    with torch.no_grad():
        for batch in task.calibration_batches():
            logits, pruned = (task.forward(m, batch).double() for m in (dense, smaller))
            kept = logits.log_softmax(-1)
            divergences.append((kept.exp() * (kept - pruned.log_softmax(-1))).sum(-1).mean())
            errors.append((pruned - logits).pow(2).mean())
    assert found == pytest.approx(float(torch.stack(divergences).mean()), rel=1e-4)
    assert found != pytest.approx(float(torch.stack(errors).mean()), rel=1e-2)  # not squared


def test_a_task_with_an_unknown_output_kind_is_refused_in_one_line():
    class Scores(ToyTask):
        output_kind = "probabilities"

    with pytest.raises(ValueError, match=r"output_kind must be one of \('values', 'logits'\)"):
        PruneEnv(Scores())


def test_calibration_distortion_leaves_the_environment_and_its_cache_as_they_were():
    env = PruneEnv("toy", target=0.3)
    env.reset()
    env.step(np.full(len(env.groups), 0.2))
    before = {name: tensor.clone() for name, tensor in env.model.state_dict().items()}
    observation, lookups = env.unwrapped._get_obs(), env.unwrapped.cache_lookups
    env.calibration_distortion(np.full((2, len(env.groups)), 0.5))
    after = env.model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert np.array_equal(env.unwrapped._get_obs(), observation)
    assert env.unwrapped.cache_lookups == lookups  # no metric was evaluated
    with pytest.raises(ValueError, match="action entries"):
        env.calibration_distortion(np.full((1, len(env.groups)), np.nan))
    with pytest.raises(ValueError, match="shape"):
        env.calibration_distortion(np.zeros((1, len(env.groups) + 1)))


def test_the_screened_answer_is_the_least_distorted_candidate_in_the_window():
    env = PruneEnv("mnist-ae", target=0.3)
    answer = propose(load_policy(), env, [0.3])[0]
    candidates = screen_candidates(env, answer, 0.3)
    assert candidates.shape == (8, len(env.groups))
    assert np.array_equal(candidates[0], answer)
    inside = np.abs(env.sparsity_of(candidates) - 0.3) <= env.tolerance + 1e-12
    assert inside.all()
    distortions = env.calibration_distortion(candidates)
    result = make_agent("learned-policy", screen=True, progress=False).run(env)
    assert result.evaluations == 1 and result.feasible  # the answer's own; none to choose it
    seen = result.details["screen"]
    assert list(seen["distortions"]) == list(SCREENED) and len(SCREENED) == 8
    assert seen["chosen"] == SCREENED[int(np.argmin(distortions))]
    assert np.allclose(list(seen["distortions"].values()), distortions)
    assert np.allclose(result.coefficients, candidates[SCREENED.index(seen["chosen"])])
    assert Result.from_json(result.to_json()).details["screen"] == seen
    with pytest.raises(ValueError, match="screen must be true, false or auto, got 'yes'"):
        make_agent("learned-policy", screen="yes")


class ClosedLoopToy(ToyTask):
    """The toy task without an evaluation batch, as a closed loop has none: its metric is not
    read from the outputs on a batch."""

    @property
    def evaluation_batch(self):
        raise AttributeError("a closed loop has no evaluation batch")


def test_by_default_the_policy_screens_only_where_the_metric_is_read_from_outputs():
    env, closed = PruneEnv("toy", target=0.5), PruneEnv(ClosedLoopToy(), target=0.5)
    assert screens("auto", env.task) and not screens("auto", closed.task)
    assert screens(True, closed.task) and not screens(False, env.task)
    runs = {}
    for name, core in (("output", env), ("closed", closed)):
        for screen in ("auto", True, False):
            core.reset()
            agent = make_agent("learned-policy", screen=screen, progress=False)
            runs[name, screen] = agent.run(core)
    assert runs["output", "auto"].details["screen"] == runs["output", True].details["screen"]
    assert runs["output", "auto"].coefficients == runs["output", True].coefficients
    assert "screen" not in runs["closed", "auto"].details
    assert runs["closed", "auto"].coefficients == runs["closed", False].coefficients
    assert runs["closed", True].details["screen"]["chosen"] in SCREENED
    assert runs["output", True].coefficients != runs["output", False].coefficients  # it matters


def test_screen_is_a_solver_option_and_the_refinement_starts_from_the_screened_answer(capsys):
    assert main(["solve", "toy", "--solver", "learned-policy:screen=true,refine=6", "--target",
                 "0.5", "--json", "--no-progress"]) == 0  # fmt: skip
    result = Result.from_json(capsys.readouterr().out)
    assert result.solver_settings["screen"] is True
    assert main(["solve", "toy", "--solver", "learned-policy:screen=true", "--target", "0.5",
                 "--no-progress"]) == 0  # fmt: skip
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("screen "))
    assert "{chosen: " in line and ", distortions: {policy: " in line  # readable, one line
    assert 1 < result.evaluations <= 7 and result.feasible
    env = PruneEnv("toy", target=0.5)
    screened = make_agent("learned-policy", screen=True, progress=False).run(env)
    assert np.allclose(result.history[0]["coefficients"], screened.coefficients)


def test_a_screened_refinement_evaluates_the_policy_s_own_answer_too(tmp_path, far_policy):
    path = tmp_path / "far.pt"
    save_policy(far_policy, path, {})
    env = PruneEnv("toy", target=0.5)
    own = propose(load_policy(path), env, [0.5])[0]
    screened = make_agent("learned-policy", policy=path, screen=True, progress=False).run(env)
    assert not np.allclose(screened.coefficients, own)  # the screen chose another candidate

    def evaluated(refine: int) -> tuple[list[np.ndarray], int]:
        agent = make_agent(
            "learned-policy", policy=path, screen=True, refine=refine, progress=False
        )
        result = agent.run(env)
        return [np.asarray(row["coefficients"]) for row in result.history], result.evaluations

    rows, evaluations = evaluated(4)
    assert np.allclose(rows[0], screened.coefficients) and evaluations <= 5
    assert any(np.allclose(row, own) for row in rows[:3])  # the screen is a proxy
    assert any(np.allclose(row, lamp_answer(env, 0.5)) for row in rows[:3])
    rows, evaluations = evaluated(1)  # room for the screen's choice and the prior only
    assert evaluations <= 2 and not any(np.allclose(row, own) for row in rows)


def test_with_proposals_the_local_search_evaluates_the_least_distorted_fresh_masks(monkeypatch):
    from prunegym.agents.learned_policy import LearnedPolicy

    chosen_by_screen, original = [], LearnedPolicy._least_distorted

    def checked(self, rows, count):
        chosen = original(self, rows, count)
        core = self.problem.core
        assert len(chosen) == count and len(np.unique(core.pruned_counts(chosen), axis=0)) == count
        fresh = self.problem.in_window(core.sparsity_of(rows)) & np.array(
            [not core.cached(row) for row in rows]
        )
        _, first = np.unique(core.pruned_counts(rows[fresh]), axis=0, return_index=True)
        pool = rows[fresh][first]  # the fresh masks in the window, once each
        if len(pool) >= count:  # enough to choose from: the least distorted of them
            assert self.problem.in_window(core.sparsity_of(chosen)).all()
            assert not any(core.cached(row) for row in chosen)
            values = core.calibration_distortion(pool)  # to float rounding, batch-dependent
            keys = [tuple(row) for row in core.pruned_counts(pool)]
            worst = max(values[keys.index(tuple(row))] for row in core.pruned_counts(chosen))
            assert worst <= np.sort(values)[count - 1] * (1 + 1e-6)
        chosen_by_screen.extend(chosen)
        return chosen

    monkeypatch.setattr(LearnedPolicy, "_least_distorted", checked)
    env = PruneEnv("toy", target=0.5)
    spec = "learned-policy:screen=true,refine=12,batch=3,proposals=4"
    result = make_agent(spec, progress=False).run(env)
    assert result.solver_settings["proposals"] == 4 and result.evaluations <= 13
    evaluated = [np.asarray(row["coefficients"]) for row in result.history]
    assert chosen_by_screen and all(
        any(np.allclose(row, seen) for seen in chosen_by_screen) for row in evaluated[3:]
    )  # after the answer, the prior and the policy's own: only the screen's choices
    monkeypatch.undo()
    plain = make_agent("learned-policy:screen=true,refine=12,batch=3", progress=False).run(env)
    once = make_agent(spec.replace("=4", "=1"), progress=False).run(env)
    assert [r["coefficients"] for r in once.history] == [r["coefficients"] for r in plain.history]
    with pytest.raises(ValueError, match="proposals must be an integer >= 1, got 0"):
        make_agent("learned-policy", proposals=0)


class RowMeanToy(ToyTask):
    """The toy task whose ``forward`` averages over the batch: its outputs cannot be split
    into candidates, so the distortion is computed one mask at a time."""

    def forward(self, model, batch):
        return model(batch).mean(dim=0, keepdim=True)


class InputsBesideToy(ToyTask):
    """The toy task whose outputs carry the inputs beside them, as TD-MPC's Q-function does
    with its actions: rows that no mask expands, so several candidates per forward fail."""

    def forward(self, model, batch):
        return torch.cat([model(batch), batch[:, :1]], dim=-1)


@pytest.mark.parametrize("task", ["toy", "mnist-classifier", "residual", "row-mean", "beside"])
def test_batched_calibration_distortion_matches_one_mask_at_a_time(task):
    made = {"residual": ResidualTask, "row-mean": RowMeanToy, "beside": InputsBesideToy}
    unsplit = task in ("row-mean", "beside")
    batching = "auto" if unsplit else "batched"  # as a GPU's default would
    env = PruneEnv(made[task]() if task in made else task, batching=batching)
    core = env.unwrapped
    rows = np.random.default_rng(0).uniform(0.0, 0.8, (6, len(env.groups)))
    rows[4] = rows[1]  # a repeated mask is computed once
    counts = core.pruner.counts(rows)

    def distortion(batched: bool) -> CalibrationDistortion:
        model, precise = core.evaluator.model, core.evaluator.precise
        return CalibrationDistortion(core.task, model, core.pruner, precise, batched=batched)

    screen = distortion(True) if unsplit else core.evaluator._calibration
    found = screen(counts) if unsplit else env.calibration_distortion(rows)
    assert isinstance(screen._masks, CandidateMasks) == (not unsplit)  # else: one at a time
    assert found[4] == found[1] and np.all(found > 0)
    np.testing.assert_allclose(found, distortion(False)(counts), rtol=1e-4, atol=1e-12)
    if not unsplit:  # several candidates per forward, and chunks of one give the same
        screen._chunk = 1
        np.testing.assert_allclose(env.calibration_distortion(rows), found, rtol=1e-6)


def test_a_batched_forward_that_fails_once_in_use_warns_and_falls_back(monkeypatch):
    env = PruneEnv("toy", batching="batched")
    core = env.unwrapped
    rows = np.random.default_rng(1).uniform(0.0, 0.8, (4, len(env.groups)))
    batched = env.calibration_distortion(rows[:2])  # probed and in use
    assert isinstance(core.evaluator._calibration._masks, CandidateMasks)

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")

    monkeypatch.setattr("prunegym.envs.evaluation.calibration.candidate_outputs", out_of_memory)
    with pytest.warns(UserWarning, match=r"batched forward failed \(CUDA out of memory\. Tried"):
        found = env.calibration_distortion(rows)
    assert core.evaluator._calibration._masks is False  # one mask at a time from now on
    np.testing.assert_allclose(found[:2], batched, rtol=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning, and a probe that fails says nothing
        np.testing.assert_array_equal(env.calibration_distortion(rows), found)
        monkeypatch.undo()  # a forward that cannot be split fails in the probe: silently
        beside = PruneEnv(InputsBesideToy()).unwrapped
        evaluator = beside.evaluator
        probed = CalibrationDistortion(
            beside.task, evaluator.model, beside.pruner, evaluator.precise, batched=True
        )
        probed(beside.pruner.counts(rows[:2]))
        assert probed._masks is False


def test_on_the_cpu_by_default_the_distortion_is_computed_one_mask_at_a_time():
    env = PruneEnv("mnist-convnet")  # where K copies per forward cost more than K forwards
    env.calibration_distortion(np.full((2, len(env.groups)), 0.3))
    assert env.unwrapped.evaluator._calibration._masks is False
