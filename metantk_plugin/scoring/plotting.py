"""Scatter plots of proxy rank against accuracy: one panel per proxy, one colour per target."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from metantk_plugin.atomic_files import write_atomically
from metantk_plugin.scoring.correlation import CorrelationResult, oriented

__all__ = ["plot_rank_scatter"]


def plot_rank_scatter(
    scores: pd.DataFrame,
    accuracies: Mapping[str, pd.Series],
    directions: Mapping[str, bool],
    results: Sequence[CorrelationResult],
    path: str | Path,
    *,
    columns: int = 5,
) -> Path:
    """Write a PNG: for each proxy, x = the architecture's rank by oriented score as a
    percentile (100 = best predicted), y = accuracy (percent) per target in
    ``accuracies`` (Series indexed by architecture string); titles give Spearman ρ."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    proxies = list(directions)
    ncols = min(columns, len(proxies))
    nrows = math.ceil(len(proxies) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.8 * nrows), squeeze=False)
    rho = {(r.proxy, r.target): r.spearman for r in results}
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, proxy in zip(axes.flat, proxies):
        s = oriented(scores[proxy].to_numpy(), directions[proxy])
        for i, (target, acc) in enumerate(accuracies.items()):
            y = acc.reindex(scores["arch"]).to_numpy(dtype=np.float64)
            keep = np.isfinite(y)
            x = 100.0 * rankdata(s[keep]) / max(1, keep.sum())
            label = f"{target} ρ={rho.get((proxy, target), float('nan')):.2f}"
            ax.scatter(x, y[keep], s=14, alpha=0.8, color=colours[i % len(colours)], label=label, linewidths=0)
        ax.set_title(proxy, fontsize=10)
        ax.set_xlabel("score rank (percentile, higher = better)", fontsize=7)
        ax.set_ylabel("accuracy (%)", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="lower right", markerscale=1.5, frameon=False)
    for ax in list(axes.flat)[len(proxies):]:
        ax.axis("off")
    fig.tight_layout()
    try:
        return write_atomically(path, lambda file: fig.savefig(file, dpi=110, format="png"), binary=True)
    finally:
        plt.close(fig)
