from __future__ import annotations

import pytest
import torch
from torch import nn

from metantk_plugin.fewshot.logistic import fit_logistic_regression, logistic_objective
from metantk_plugin.fewshot.rfs import PretrainConfig, episode_features, probe_accuracy
from metantk_plugin.tasks import synthetic_tasks


def test_logistic_regression_reaches_the_optimum():
    generator = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(4, 30, 16, generator=generator), dim=-1)
    y = torch.randint(0, 5, (4, 30), generator=generator)
    weight, bias = fit_logistic_regression(x, y, 5, C=2.0)
    assert weight.shape == (4, 5, 16) and bias.shape == (4, 5)
    w = weight.double().requires_grad_()
    b = bias.double().requires_grad_()
    logistic_objective(w, b, x.double(), y, 2.0).sum().backward()
    assert w.grad.abs().max() < 1e-4 and b.grad.abs().max() < 1e-4  # stationary point of a convex objective
    single_w, single_b = fit_logistic_regression(x[1], y[1], 5, C=2.0)
    torch.testing.assert_close(single_w, weight[1], atol=1e-4, rtol=1e-4)
    stronger, _ = fit_logistic_regression(x, y, 5, C=0.01)
    assert stronger.norm() < weight.norm()  # smaller C, stronger penalty
    with pytest.raises(ValueError, match="labels must lie in 0..4"):
        fit_logistic_regression(x, y + 1, 5)


class _Identity(nn.Module):
    """Features = the flattened input, logits = a fixed projection."""

    def __init__(self):
        super().__init__()
        self.classifier = nn.Linear(16, 3)

    def forward(self, x):
        features = x.flatten(1)
        return features, self.classifier(features)


def test_probe_separates_separable_tasks():
    tasks = synthetic_tasks(6, ways=3, shots=5, queries=4, image_size=4, channels=1, seed=0)
    accuracy = probe_accuracy(_Identity(), tasks)
    assert accuracy.shape == (6,) and float(accuracy.mean()) > 0.9
    features = episode_features(_Identity(), tasks.query_x[0])
    torch.testing.assert_close(features.norm(dim=1), torch.ones(len(features)))


def test_pretrain_schedule_decays_at_the_fractions():
    config = PretrainConfig(steps=100, lr=0.02, decay_at=(0.6, 0.8))
    assert [config.lr_at(s) for s in (0, 59, 60, 79, 80, 99)] == pytest.approx(
        [0.02, 0.02, 0.002, 0.002, 0.0002, 0.0002])
    with pytest.raises(ValueError, match="decay_at"):
        PretrainConfig(steps=10, decay_at=(1.5,))
