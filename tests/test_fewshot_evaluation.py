from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from metantk_plugin.data.episodes import EpisodeSampler
from metantk_plugin.fewshot.evaluation import confidence_interval, episode_seeds, evaluate_episodes


def test_confidence_interval_is_the_student_t_interval():
    values = np.array([0.2, 0.6, 0.4, 0.8, 0.5])
    mean, half = confidence_interval(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    assert mean == pytest.approx(0.5) and half == pytest.approx((high - low) / 2)
    assert confidence_interval([0.7]) == (0.7, 0.0)
    assert confidence_interval(values, 0.99)[1] > half
    with pytest.raises(ValueError, match="non-empty"):
        confidence_interval([])


def test_evaluate_episodes_scores_each_episode_once():
    labels = torch.arange(10).repeat_interleave(4)
    images = labels.float().view(-1, 1, 1, 1)  # the pixel is the class id
    sampler = EpisodeSampler(images, labels, ways=2, shots=1, queries=1)

    def perfect(tasks):  # a classifier that reads the class id: match query to support pixel
        support, query = tasks.support_x.flatten(1), tasks.query_x.flatten(1)
        predicted = (query[:, :, None] == support[:, None, :]).float().argmax(-1)
        return (tasks.support_y.gather(1, predicted) == tasks.query_y).float().mean(1)

    result = evaluate_episodes(perfect, sampler, episodes=37, batch_size=8, progress=False)
    assert result.episodes == 37 and result.accuracy == 1.0 and result.ci95 == 0.0
    coin = evaluate_episodes(lambda t: (torch.arange(t.n_tasks) % 2).float(), sampler, episodes=40, progress=False)
    assert coin.accuracy == 0.5 and coin.ci95 > 0
    assert episode_seeds(0, 3) == episode_seeds(0, 5)[:3] and episode_seeds(0, 3) != episode_seeds(1, 3)
