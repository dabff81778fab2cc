"""prunegym bench: the grid's files, the report, resume, and the Ray backend."""

import csv
import hashlib
import json
import shutil

import numpy as np
import pytest

from prunegym.agents import Result
from prunegym.agents.learned_policy import SetPolicy, policy_path, save_policy
from prunegym.cli.main import main

GRID = ["--tasks", "toy", "--solvers", "fd-momentum,uniform,random", "--targets", "0.2,0.4",
        "--seeds", "2", "--tolerance", "0.02", "--no-baselines",
        "--option", "random:samples=12", "--no-progress"]  # fmt: skip


def _cell_times(out):
    return {path: path.stat().st_mtime_ns for path in (out / "cells").rglob("*.json")}


def test_bench_writes_cells_csv_report_and_plots(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", *GRID, "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "12 cells run, 0 already done (of 12)" in printed.err
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12 and {r["solver"] for r in rows} == {"fd-momentum", "uniform", "random"}
    assert {r["seed"] for r in rows} == {"0", "1"}
    random_rows = [r for r in rows if r["solver"] == "random" and r["target"] == "0.4"]
    assert {r["evaluations"] for r in random_rows} == {"12"}
    assert random_rows[0]["metric"] != random_rows[1]["metric"]  # seeds differ for random
    report = (out / "report.md").read_text()
    assert report.strip() in printed.out
    assert "## toy: mse, lower is better" in report and "| fd-momentum | " in report
    line = next(row for row in report.splitlines() if row.startswith("| uniform | "))
    assert line.count("± 0") == 2  # uniform is deterministic: std 0 over seeds
    assert "### Quality against compute" in report and "| fd-momentum | 0." in report
    for name in (
        "metric_vs_sparsity_toy.png",
        "coefficients_toy.png",
        "quality_vs_compute_toy.png",
    ):
        assert (out / name).read_bytes()[:4] == b"\x89PNG" and (out / name).stat().st_size > 10_000
    spec = json.loads((out / "spec.json").read_text())
    assert spec["targets"] == [0.2, 0.4] and spec["options"] == {"random": {"samples": 12}}


def test_bench_resumes_skipping_finished_cells(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", *GRID, "--out", str(out)]) == 0
    before = _cell_times(out)
    assert len(before) == 12
    capsys.readouterr()
    assert main(["bench", *GRID, "--out", str(out)]) == 0
    assert "0 cells run, 12 already done" in capsys.readouterr().err
    assert _cell_times(out) == before  # nothing was rewritten
    lost = out / "cells" / "toy" / "uniform" / "target-0.4_seed-1.json"
    lost.unlink()
    (out / "cells" / "toy" / "uniform" / "target-0.2_seed-0.json").write_text("{half a fi")
    assert main(["bench", *GRID, "--out", str(out)]) == 0
    assert "2 cells run, 10 already done" in capsys.readouterr().err
    assert lost.exists()
    changed = [*GRID[:-2], "random:samples=5", "--no-progress"]  # another random setting
    assert main(["bench", *changed, "--out", str(out)]) == 0
    assert "4 cells run, 8 already done" in capsys.readouterr().err


def test_bench_checks_every_solver_first_keeps_paths_inside_out_and_reruns_a_new_policy(
    tmp_path, capsys, monkeypatch
):
    policy = tmp_path / "policies" / "p.pt"
    policy.parent.mkdir()
    shutil.copy(policy_path(), policy)
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a" / "b" / "c")
    spec = "learned-policy:policy=../../../policies/p.pt"  # unquoted, it would climb out
    out = tmp_path / "bench"
    argv = ["bench", "--tasks", "toy", "--targets", "0.3", "--seeds", "1", "--no-baselines",
            "--no-progress", "--out", str(out), "--solvers"]  # fmt: skip
    assert main([*argv, "uniform,learned-policy:refine=-1"]) == 2  # before any cell ran
    assert "refine must be an integer" in capsys.readouterr().err and not out.exists()
    assert main([*argv, spec]) == 0
    (cell,) = tmp_path.rglob("target-0.3_seed-0.json")
    assert cell.parent.parent == out / "cells" / "toy"  # one folder, the '/' quoted
    recorded = Result.load(cell).solver_settings["policy_sha256"]
    assert recorded == hashlib.sha256(policy.read_bytes()).hexdigest()
    capsys.readouterr()
    assert main([*argv, spec]) == 0
    assert "0 cells run, 1 already done" in capsys.readouterr().err
    save_policy(SetPolicy(hidden=8), policy, {})  # the same path, another policy
    assert main([*argv, spec]) == 0
    assert "1 cells run, 0 already done" in capsys.readouterr().err


def test_bench_cells_validate(tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["--tasks", "toy", "--solvers", "fd-momentum", "--targets", "0.3", "--seeds", "1",
            "--no-baselines"]  # fmt: skip
    assert main(["bench", *argv, "--tolerance", "0.02", "--out", str(out)]) == 0
    cell = out / "cells" / "toy" / "fd-momentum" / "target-0.3_seed-0.json"
    assert main(["validate", str(cell)]) == 0
    assert "validated" in capsys.readouterr().out


def test_bench_on_ray_runs_a_grid_like_sequential(tmp_path, capsys):
    pytest.importorskip("ray")
    from prunegym.agents import Result

    argv = ["--tasks", "toy", "--solvers", "fd-momentum,uniform", "--targets", "0.3",
            "--seeds", "1", "--tolerance", "0.02", "--no-progress"]  # fmt: skip
    assert main(["bench", *argv, "--backend", "ray", "--out", str(tmp_path / "ray")]) == 0
    assert "8 cells run, 0 already done (of 8)" in capsys.readouterr().err  # 6 baselines
    skipped = "cells/toy/torch-pruning-bn-scale/target-0.3_seed-0.not-applicable"
    assert "no BatchNorm" in (tmp_path / "ray" / skipped).read_text()
    assert main(["bench", *argv, "--out", str(tmp_path / "seq")]) == 0
    for solver in ("fd-momentum", "uniform"):
        name = f"cells/toy/{solver}/target-0.3_seed-0.json"
        on_ray, here = Result.load(tmp_path / "ray" / name), Result.load(tmp_path / "seq" / name)
        assert on_ray.coefficients == here.coefficients and on_ray.metric == here.metric
        assert on_ray.machine["torch_threads"] == 1  # it ran in a Ray worker, not here


def test_bench_adds_torch_pruning_with_every_criterion_once(tmp_path, capsys):
    from prunegym.agents import Result, baseline_names

    out = tmp_path / "bench"
    argv = ["bench", "--tasks", "toy", "--solvers", "uniform", "--targets", "0.3", "--seeds", "2",
            "--tolerance", "0.02", "--option", "torch-pruning-lamp:bisections=12",
            "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "8 cells run, 0 already done (of 8)" in capsys.readouterr().err  # 2 seeds + 6 once
    ran = {}
    for name in baseline_names():
        cell = out / "cells" / "toy" / name / "target-0.3_seed-0.json"
        if name == "torch-pruning-bn-scale":  # the toy MLP has no BatchNorm
            assert not cell.exists()
            reason = cell.with_suffix(".not-applicable").read_text()
            assert "no BatchNorm layer" in reason
            continue
        result = Result.load(cell)
        assert result.solver == name and result.evaluations == 1
        assert result.details["importance"] == name.removeprefix("torch-pruning-")
        ran[name] = result
    assert ran["torch-pruning-lamp"].solver_settings["bisections"] == 12  # its own option
    report = (out / "report.md").read_text()
    assert "`torch-pruning-bn-scale` does not apply" in report
    feasible = {n: r.metric for n, r in ran.items() if r.feasible}
    best = min(feasible, key=feasible.get)  # mse: lower is better
    line = next(row for row in report.splitlines() if row.startswith("| **best Torch-Pruning"))
    assert f"{feasible[best]:.4g} ({best.removeprefix('torch-pruning-')})" in line
    capsys.readouterr()
    assert main(argv) == 0  # the not-applicable cell counts as done
    assert "0 cells run, 8 already done" in capsys.readouterr().err
    lamp = out / "cells" / "toy" / "torch-pruning-lamp" / "target-0.3_seed-0.json"
    assert main(["validate", str(lamp)]) == 0  # re-run, not replayed through the masks
    assert "re-running it" in capsys.readouterr().err


def test_bench_at_weight_granularity_adds_no_torch_pruning_baseline(tmp_path, capsys):
    argv = ["bench", "--tasks", "toy", "--solvers", "uniform", "--targets", "0.3", "--seeds",
            "1", "--granularity", "weight", "--no-progress", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    assert "1 cells run, 0 already done (of 1)" in capsys.readouterr().err


def test_quality_against_compute_holds_each_solver_at_its_best_so_far():
    from types import SimpleNamespace

    from prunegym.bench import anytime
    from prunegym.tasks import task_class

    scale = 0.02  # what the result records wins over the task class's value
    assert task_class("toy").metric_scale != scale

    def run(solver, metrics, seconds):
        history = [{"metric": m, "sparsity": 0.3, "feasible": True, "seconds": s}
                   for m, s in zip(metrics, seconds, strict=True)]  # fmt: skip
        return SimpleNamespace(task="toy", solver=solver, target=0.3, seed=0, tolerance=0.01,
                               dense_metric=0.0, history=history, metric_scale=scale)  # fmt: skip

    quick = run("quick", [0.5 * scale], [0.1])  # one answer, half a scale worse than dense
    slow = run("slow", [2 * scale, 0.5 * scale, 0.25 * scale, 0.3 * scale], [1, 2, 3, 4])
    seconds, quality = anytime.best_so_far(slow)
    np.testing.assert_allclose(quality, [0.0, 0.5, 0.75, 0.75])  # mse: lower is better
    rows = {row["solver"]: row for row in anytime.areas([quick, slow])}
    assert rows["quick"]["by_evaluations"] == pytest.approx(0.5)  # held at 0.5 for 4 evals
    assert rows["slow"]["by_evaluations"] == pytest.approx((0 + 0.5 + 0.75 + 0.75) / 4)
    assert rows["quick"]["by_seconds"] == pytest.approx(0.5 * 3.9 / 4)  # from 0.1 s to 4 s
    assert rows["slow"]["by_seconds"] == pytest.approx((0.5 + 0.75 + 0.75 * 0) / 4 + 0)
    assert rows["slow"]["final"] == 0.75 and rows["quick"]["final"] == 0.5
    # two one-shot answers 20 ms apart: the horizon is a second, not the later answer's time
    first, second = run("first", [0.0], [0.03]), run("second", [0.0], [0.05])
    rows = {row["solver"]: row for row in anytime.areas([first, second])}
    assert rows["first"]["by_seconds"] == pytest.approx(0.97)
    assert rows["second"]["by_seconds"] == pytest.approx(0.95)


def test_bench_envs_are_built_with_their_group_features():
    from prunegym.bench.grid import BenchSpec, Cell, run_cell

    spec = BenchSpec(tasks=["toy"], solvers=["uniform"], targets=[0.3], seeds=1)
    cache: dict = {}
    run_cell(spec, Cell("toy", "uniform", 0.3, 0), cache)
    assert cache["toy"]._group_features is not None  # no learned-policy cell pays for them
    weights = BenchSpec(tasks=["toy"], solvers=["uniform"], targets=[0.3], granularity="weight")
    cache = {}
    run_cell(weights, Cell("toy", "uniform", 0.3, 0), cache)
    assert cache["toy"]._group_features is None  # no channel groups to describe
