"""Pictures users look at: reconstruction grids, metric against sparsity, coefficient bars,
and TD-MPC return bars with a strip of frames. All drawn with matplotlib (Agg) and
torchvision's ``make_grid``; every function writes a PNG and returns its path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from prunegym.tasks.intervals import mean_ci95


def _figure(rows: int = 1, columns: int = 1, **options):
    """A matplotlib ``Figure`` and its axes, without pyplot: no global backend or state, so
    drawing never changes a user's matplotlib setup. Imported here: matplotlib costs about
    half a second, which a command that draws nothing should not pay."""
    from matplotlib.figure import Figure

    figsize = options.pop("figsize", None)
    figure = Figure(figsize=figsize)
    return figure, figure.subplots(rows, columns, **options)


def _save(figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


def save_reconstruction_grid(
    path: str | Path, rows: dict[str, torch.Tensor], columns: int = 10, title: str = ""
) -> Path:
    """Save a PNG with one labelled row of 28×28 digits per entry of ``rows``.

    Args:
        path: Output PNG path.
        rows: Row label to ``(N, 784)`` images in [0, 1]; the first ``columns`` are drawn.
        columns: Digits per row.
        title: Figure title.
    """
    figure, axes = _figure(
        len(rows), columns, figsize=(columns * 0.9, len(rows) * 1.0 + 0.4), squeeze=False
    )
    for row, (label, images) in enumerate(rows.items()):
        for column in range(columns):
            axis = axes[row][column]
            axis.imshow(
                images[column].reshape(28, 28).detach().cpu().numpy(), cmap="gray", vmin=0, vmax=1
            )
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=9)
    return _save(figure, path)


def save_metric_vs_sparsity(
    path: str | Path,
    lines: Mapping[str, Sequence[tuple[float, float, float]]],
    metric: str,
    dense: float | None = None,
    title: str = "",
) -> Path:
    """Metric against achieved sparsity, one line per solver.

    Args:
        lines: Solver name to points ``(sparsity fraction, metric mean, metric std)``.
        metric: Y-axis label (e.g. ``"psnr (dB)"``).
        dense: The dense model's metric, drawn as a dashed line.
    """
    figure, axis = _figure(figsize=(6.4, 4.2))
    for solver, points in lines.items():
        points = sorted(points)
        x = [100 * p[0] for p in points]
        axis.errorbar(x, [p[1] for p in points], yerr=[p[2] for p in points], marker="o",
                      markersize=4, capsize=3, label=solver)  # fmt: skip
    if dense is not None:
        axis.axhline(dense, color="gray", linestyle="--", linewidth=1, label="dense")
    axis.set_xlabel("achieved sparsity (%)")
    axis.set_ylabel(metric)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    axis.set_title(title, fontsize=9)
    return _save(figure, path)


def save_coefficient_bars(
    path: str | Path,
    charts: Mapping[str, Mapping[str, Sequence[float]]],
    groups: Sequence[str],
    title: str = "",
) -> Path:
    """Coefficients per pruning group as bars: one chart per solver, one bar colour per run.

    Args:
        charts: Solver name to ``{run label (e.g. "20%"): (m,) coefficients}``.
        groups: The ``m`` group labels, in coefficient order.
    """
    rows = max(len(charts), 1)
    figure, axes = _figure(
        rows, 1, figsize=(max(6.4, 0.55 * len(groups) + 2), 2.2 * rows + 0.6), squeeze=False
    )
    index = np.arange(len(groups))
    for axis, (solver, runs) in zip(axes[:, 0], charts.items(), strict=False):
        width = 0.8 / max(len(runs), 1)
        for k, (label, values) in enumerate(runs.items()):
            axis.bar(index + (k - (len(runs) - 1) / 2) * width, values, width, label=label)
        axis.set_title(solver, fontsize=9)
        axis.set_ylabel("c_i")
        axis.set_ylim(0, 1)
        axis.set_xticks(index, groups, rotation=30, ha="right", fontsize=7)
        axis.grid(axis="y", alpha=0.3)
        if len(runs) > 1:
            axis.legend(fontsize=7, ncol=min(len(runs), 6))
    if title:
        figure.suptitle(title, fontsize=9)
    return _save(figure, path)


def save_return_bars(
    path: str | Path,
    returns: Mapping[str, Sequence[float]],
    frames: np.ndarray | None = None,
    frame_every: int = 5,
    frame_count: int = 12,
    frame_label: str = "",
    title: str = "",
    episodes_label: str = "evaluation episode",
) -> Path:
    """Episode returns per model as grouped bars, and under them a strip of episode frames.

    Args:
        returns: Model label (e.g. ``"dense"``, ``"pruned 20%"``) to ``(K,)`` episode returns;
            the legend gives each mean with the half-width of its 95 % interval.
        frames: ``(T, H, W, 3)`` uint8 frames of one episode, or ``None`` for bars only.
        frame_every, frame_count: Draw ``frame_count`` frames, every ``frame_every``-th.
        frame_label: Caption of the strip.
        episodes_label: Label of the episode axis.
    """

    strip = frames is not None and len(frames) > 0
    figure, axes = _figure(
        2 if strip else 1, 1, figsize=(10, 6.4 if strip else 3.6), squeeze=False,
        gridspec_kw={"height_ratios": [2.4, 1.6] if strip else [1]},
    )  # fmt: skip
    axis = axes[0, 0]
    width = 0.8 / max(len(returns), 1)
    for k, (label, values) in enumerate(returns.items()):
        values = np.asarray(values, dtype=np.float64)
        episodes = np.arange(len(values))
        mean, half_width = mean_ci95(values)
        axis.bar(episodes + (k - (len(returns) - 1) / 2) * width, values, width,
                 label=f"{label} (mean {mean:.1f} ± {half_width:.1f})")  # fmt: skip
    axis.set_xlabel(episodes_label)
    axis.set_ylabel("return")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8)
    axis.set_title(title, fontsize=9)
    if strip:
        picked = frames[: frame_every * frame_count : frame_every]
        chosen = torch.from_numpy(np.ascontiguousarray(picked)).permute(0, 3, 1, 2)
        from torchvision.utils import make_grid  # torchvision costs seconds to import

        grid = make_grid(chosen, nrow=len(chosen), padding=3, pad_value=128)
        axes[1, 0].imshow(grid.permute(1, 2, 0).numpy())
        axes[1, 0].set_axis_off()
        caption = f"decisions 0, {frame_every}, ..., {frame_every * (len(picked) - 1)}"
        axes[1, 0].set_title(f"{frame_label} {caption}".strip(), fontsize=8)
    return _save(figure, path)


def save_quality_vs_compute(
    path: str | Path,
    curves: Mapping[str, Sequence[tuple[np.ndarray, np.ndarray]]],
    title: str = "",
) -> Path:
    """Best quality so far (0–1, 1 = the dense metric) against evaluations (left) and wall
    seconds (right, log scale), one line per solver: the mean over its runs, each run held at
    its final value after it stopped.

    Args:
        curves: Solver name to its runs' ``(seconds, quality)`` arrays, one entry per
            evaluation.
    """
    figure, (by_count, by_time) = _figure(1, 2, figsize=(10.0, 4.0))
    longest = max((len(q) for runs in curves.values() for _, q in runs), default=1)
    slowest = max((float(s[-1]) for runs in curves.values() for s, _ in runs if len(s)), default=1)
    fastest = min(
        (float(s[0]) for runs in curves.values() for s, _ in runs if len(s) and s[0] > 0),
        default=slowest / 1e3,
    )
    times = np.geomspace(max(fastest, 1e-4), max(slowest, 2e-4), 200)
    for index, (solver, runs) in enumerate(curves.items()):
        counts = np.arange(1, longest + 1)
        padded = [np.append(q, np.full(longest - len(q), q[-1])) for _, q in runs if len(q)]
        if not padded:
            continue
        style = {
            "color": _PALETTE[index % len(_PALETTE)], "linewidth": 1.4,
            "linestyle": "--" if solver.startswith("torch-pruning") else "-",
        }  # fmt: skip
        by_count.plot(counts, np.mean(padded, axis=0), **style)
        at_times = []
        for seconds, quality in runs:
            index = np.searchsorted(seconds, times, side="right") - 1
            at_times.append(np.where(index >= 0, quality[np.maximum(index, 0)], 0.0))
        by_time.plot(times, np.mean(at_times, axis=0), label=solver, **style)
    by_count.set_xscale("log")
    by_count.set_xlabel("evaluations")
    by_time.set_xscale("log")
    by_time.set_xlabel("wall seconds")
    for axis in (by_count, by_time):
        axis.set_ylabel("best quality so far (1 = dense)")
        axis.grid(alpha=0.3)
    by_time.legend(fontsize=7, loc="lower right")
    if title:
        figure.suptitle(title, fontsize=9)
    return _save(figure, path)


# twenty distinguishable colours (matplotlib's tab20, dark shades first), for many solvers
_PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
]  # fmt: skip
