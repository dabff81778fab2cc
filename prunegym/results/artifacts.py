"""What ``prunegym solve --out DIR`` writes: the result file, pictures and the smaller model.

``DIR/result.json``      the Result (see the README's "Result files")
``DIR/coefficients.png`` the coefficients per group as bars
``DIR/picture.png``      the task's picture: a reconstruction grid (autoencoders) or episode
                         return bars with a frame strip (control tasks); absent for tasks with
                         neither
``DIR/model.pt2``        the physically pruned model, ``torch.export.load(path).module()``
                         (weight granularity: ``DIR/masked_state_dict.pt`` instead, the masked
                         and compensated weights, since no channel is removed)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prunegym.pruning.channel.macs import count_macs
from prunegym.pruning.export import measure_latency, save_exported
from prunegym.results import plots
from prunegym.tasks.capabilities import PlaysEpisodes, Reconstructs


def save_task_picture(env, result, path: str | Path, pruned: nn.Module | None = None):
    """Draw the task's picture of ``result``; returns the path, or ``None`` if the task has no
    picture. ``pruned`` is a model to draw instead of replaying the coefficients (Torch-Pruning's
    own physically pruned model). The environment is left reset to the dense model."""
    core = env.unwrapped
    task = core.task
    if not isinstance(task, Reconstructs | PlaysEpisodes):
        return None
    core.reset()
    dense_model = core.model
    title = f"{task.name}: {result.solver} at {result.sparsity:.1%} sparsity"
    if isinstance(task, Reconstructs):
        dense = task.reconstruct(dense_model)
        if pruned is None:
            core.step(np.asarray(result.coefficients))
            pruned_output = task.reconstruct(core.model)
            core.reset()
        else:
            pruned_output = task.reconstruct(pruned)
        rows = {"original": task.eval_images, "dense": dense, result.solver: pruned_output}
        return plots.save_reconstruction_grid(path, rows, title=title)
    dense_returns = task.episode_returns(dense_model)
    model = pruned
    if model is None:
        core.step(np.asarray(result.coefficients))
        model = core.model
    episode = int(np.argmin(dense_returns))  # the hardest start: usually a full swing-up
    frames, played = task.episode_frames(model, episode=episode)
    label = f"pruned agent, search episode {episode} (return {played:.1f}):"
    if result.test_values:  # the held-out episodes, not the ones the solver chose on
        returns = {
            "dense": result.dense_test_values,
            f"pruned ({result.solver})": result.test_values,
        }
        episodes_label = "held-out test episode"
    else:
        returns = {"dense": dense_returns, f"pruned ({result.solver})": task.episode_returns(model)}
        episodes_label = "evaluation episode"
    core.reset()
    return plots.save_return_bars(
        path, returns, frames, frame_label=label, title=title, episodes_label=episodes_label
    )


def save_solve_outputs(env, result, directory: str | Path, pruned: nn.Module | None = None):
    """Write result.json, coefficients.png, picture.png (if the task has one) and model.pt2
    into ``directory``. Returns ``{name: path}`` and a list of export summary lines."""

    core = env.unwrapped
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = {"result": directory / "result.json"}
    result.save(written["result"])
    labels = [f"{g.index} {g.label}" for g in core.groups]
    written["coefficients"] = plots.save_coefficient_bars(
        directory / "coefficients.png",
        {result.solver: {f"{result.target:.0%}": result.coefficients}},
        labels,
        title=f"{result.task}: coefficients per group (fraction of channels removed)",
    )
    picture = save_task_picture(env, result, directory / "picture.png", pruned)
    if picture is not None:
        written["picture"] = picture
    if getattr(core, "granularity", "channel") == "weight":
        return written, _save_masked_weights(core, result, directory, written)
    if pruned is None:
        pruned = core.export(np.asarray(result.coefficients))
    written["model"] = save_exported(pruned, core.task.example_inputs, directory / "model.pt2")
    core.reset()
    summary, latency = export_summary(core, pruned, written["model"])
    result.costs.update(latency)
    result.save(written["result"])
    return written, summary


def export_latency(core, pruned: nn.Module) -> dict:
    """Measured latency of the dense and the exported model, on the task's device:
    ``latency_ms`` and ``latency_dense_ms`` (medians of 20 forwards of the task's evaluation
    batch, or of its example inputs for tasks without one) and ``latency_what``."""
    task = core.task
    batch = getattr(task, "evaluation_batch", None)
    if batch is None:
        inputs = task.example_inputs
        arguments = inputs if isinstance(inputs, tuple) else (inputs,)
        what = "the example inputs"

        def forward(model):
            return model(*arguments)
    else:
        rows = len(batch[0]) if isinstance(batch, tuple | list) else len(batch)
        what = f"the {rows} evaluation samples"

        def forward(model):
            return task.forward(model, batch)

    dense = task.load_model().eval()  # the model as the user has it, not the env's copy
    dense_ms = measure_latency(lambda: forward(dense), core.device)
    pruned_ms = measure_latency(lambda: forward(pruned), core.device)
    return {"latency_ms": pruned_ms, "latency_dense_ms": dense_ms,
            "latency_what": f"median of 20 forwards of {what} on {core.device}"}  # fmt: skip


def _save_masked_weights(core, result, directory: Path, written: dict) -> list[str]:
    """Weight-level masks remove no channel, so there is no smaller model: save the masked,
    compensated state dict instead (``model.load_state_dict(torch.load(path))``)."""

    core.reset()
    core.step(np.asarray(result.coefficients))
    state = {name: tensor.detach().clone() for name, tensor in core.model.state_dict().items()}
    core.reset()
    written["weights"] = directory / "masked_state_dict.pt"
    torch.save(state, written["weights"])
    zeros = sum(int((t == 0).sum()) for t in state.values())
    total = sum(t.numel() for t in state.values())
    return [
        "weight-level masks remove no channel: no smaller model to export",
        f"masked state dict: {zeros:,} of {total:,} entries zero ({written['weights'].name})",
    ]


def export_summary(core, pruned: nn.Module, path: Path) -> tuple[list[str], dict]:
    """Lines comparing parameters, MACs per sample and measured latency, dense (the
    environment's model, reset) against exported (``pruned``), and the size of the exported
    file at ``path``; and the latency figures of :func:`export_latency`."""

    inputs = core.task.example_inputs
    dense_parameters = sum(p.numel() for p in core.model.parameters())
    parameters = sum(p.numel() for p in pruned.parameters())
    dense_macs, macs = count_macs(core.model, inputs), count_macs(pruned, inputs)
    latency = export_latency(core, pruned)
    return [
        f"parameters  {dense_parameters:,} dense -> {parameters:,} exported",
        f"MACs        {dense_macs:,} dense -> {macs:,} exported (per sample; convolutions and "
        "linear layers)",
        f"latency     {latency['latency_dense_ms']:.2f} ms dense -> "
        f"{latency['latency_ms']:.2f} ms exported ({latency['latency_what']})",
        f"file size   {os.path.getsize(path):,} bytes ({Path(path).name})",
    ], latency
