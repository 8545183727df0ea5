"""The training-curve figure (PNG, matplotlib's Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from metantk_plugin.atomic_files import write_atomically
from metantk_plugin.fewshot.training import TrainingHistory

__all__ = ["plot_training_curve"]


def _moving_average(values: list[float], window: int) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    window = max(1, min(window, len(values)))
    kernel = np.ones(window) / window
    head = np.cumsum(values[:window - 1]) / np.arange(1, window)  # growing window at the start
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])


def plot_training_curve(history: TrainingHistory, path: str | Path, *, title: str = "") -> Path:
    """Loss and accuracy per step (raw and a moving average over ~2% of the steps), with
    validation accuracy ± 95% CI where recorded; written to ``path`` atomically, in the format
    its suffix names."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    path = Path(path)
    steps = np.asarray(history.iteration)
    window = max(1, len(steps) // 50)
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 3.8))
    for axis, values, label in ((loss_axis, history.loss, "query loss"), (accuracy_axis, history.accuracy,
                                                                           "query accuracy (train tasks)")):
        if len(steps):
            axis.plot(steps, values, color="0.8", linewidth=0.8)
            axis.plot(steps, _moving_average(values, window), color="C0", label=label)
        axis.set_xlabel("iteration")
        axis.grid(alpha=0.3)
    loss_axis.set_ylabel("cross-entropy")
    accuracy_axis.set_ylabel("accuracy")
    if history.validation:
        rows = np.asarray(history.validation)
        accuracy_axis.errorbar(rows[:, 0], rows[:, 1], yerr=rows[:, 2], fmt="o", color="C1", label="validation")
    accuracy_axis.legend(loc="lower right")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    try:
        return write_atomically(path, lambda file: figure.savefig(file, dpi=110, format=path.suffix[1:] or None),
                                binary=True)
    finally:
        plt.close(figure)
