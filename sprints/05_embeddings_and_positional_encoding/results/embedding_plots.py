"""One helper shared by the PCA, t-SNE and UMAP scripts: a 2-D scatter colored by class."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def scatter_by_class(ax, points: np.ndarray, labels: np.ndarray, title: str, xlabel: str,
                     ylabel: str) -> None:
    """Draw points (N, 2) on ax, one color and legend entry per label."""
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10")
    for k in np.unique(labels):
        mine = labels == k
        ax.scatter(points[mine, 0], points[mine, 1], s=6, color=cmap(int(k) % 10),
                   label=str(k), alpha=0.8)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(title="digit", fontsize=7, title_fontsize=8, markerscale=2, loc="best", ncol=2)


def save_figure(fig, out_dir: str | Path, name: str) -> Path:
    """Save fig as out_dir/name (creating out_dir) and close it; returns the path."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path
