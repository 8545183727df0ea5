"""Episode evaluation: mean accuracy with a Student-t 95% confidence interval.

For per-episode accuracies a_1..a_n the interval is ``mean ± t_{0.975, n-1} · s / √n``
with ``s`` the sample standard deviation (ddof 1), as in RFS and MetaNTK-NAS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from tqdm.auto import tqdm

from metantk_plugin.data.episodes import concat_tasks, derive_seed
from metantk_plugin.task_spec import check_positive_int
from metantk_plugin.tasks import TaskBatch

__all__ = ["MIN_INTERVAL_EPISODES", "EpisodeResult", "confidence_interval", "episode_seeds", "evaluate_episodes",
           "format_accuracy"]

MIN_INTERVAL_EPISODES = 10
"""Fewer test episodes give no meaningful 95% interval (Student's t for 2 episodes is 12.7)."""


@dataclass(frozen=True)
class EpisodeResult:
    """Per-episode accuracies (fractions) and their summary."""

    accuracies: np.ndarray
    accuracy: float
    ci95: float

    @property
    def episodes(self) -> int:
        return int(len(self.accuracies))

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "ci95": self.ci95, "episodes": self.episodes}


def confidence_interval(values: np.ndarray | list[float], confidence: float = 0.95) -> tuple[float, float]:
    """``(mean, half_width)`` of the Student-t interval; the half width is 0 for one value."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"need a non-empty 1-d array of values, got shape {values.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    mean = float(values.mean())
    if len(values) == 1:
        return mean, 0.0
    sem = values.std(ddof=1) / np.sqrt(len(values))
    return mean, float(sem * stats.t.ppf(0.5 + confidence / 2, len(values) - 1))


def episode_seeds(seed: int, episodes: int) -> list[int]:
    """The seed of each test episode: episode ``i`` depends only on ``(seed, i)``."""
    return [derive_seed(seed, 0x5E7, i) for i in range(episodes)]


def evaluate_episodes(
    score: Callable[[TaskBatch], torch.Tensor],
    sampler,
    *,
    episodes: int,
    seed: int = 0,
    batch_size: int = 32,
    progress: bool = True,
    description: str = "meta-test",
) -> EpisodeResult:
    """Draw ``episodes`` episodes from ``sampler`` (``.sample(1, seed)`` each) and score them
    in batches with ``score(tasks) -> accuracies [T]``."""
    check_positive_int("episodes", episodes)
    seeds = episode_seeds(seed, episodes)
    accuracies: list[float] = []
    with tqdm(total=episodes, desc=description, unit="ep", disable=not progress, leave=False) as bar:
        for start in range(0, episodes, batch_size):
            tasks = concat_tasks([sampler.sample(1, s) for s in seeds[start:start + batch_size]])
            accuracies += [float(a) for a in score(tasks)]
            bar.update(tasks.n_tasks)
            bar.set_postfix(acc=f"{np.mean(accuracies):.3f}")
    values = np.asarray(accuracies)
    mean, half_width = confidence_interval(values)
    return EpisodeResult(values, mean, half_width)


def format_accuracy(accuracy: float, ci95: float, episodes: int) -> str:
    """``'61.20 ± 0.85 %'``, or, below :data:`MIN_INTERVAL_EPISODES` episodes, the mean alone
    with the reason the interval is left out (it is still in the result object)."""
    if episodes < MIN_INTERVAL_EPISODES:
        return (f"{100 * accuracy:.2f} % (no 95% interval: {episodes} episode{'s' if episodes != 1 else ''} "
                f"are too few for a meaningful one; use at least {MIN_INTERVAL_EPISODES})")
    return f"{100 * accuracy:.2f} ± {100 * ci95:.2f} %"
