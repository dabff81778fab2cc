"""Pictures users look at: reconstruction grids."""

from __future__ import annotations

from pathlib import Path

import torch


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
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
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
