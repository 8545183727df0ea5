"""Sizes and counts go through one validator (``metantk_plugin.task_spec.check_positive_int``):
``True`` is not a size, including at the call sites whose hand-written checks let it through."""

from __future__ import annotations

import pytest
import torch

from metantk_plugin.data.episodes import EpisodeSampler
from metantk_plugin.fewshot.conv4 import Conv4
from metantk_plugin.fewshot.evaluation import evaluate_episodes
from metantk_plugin.fewshot.rfs import PretrainConfig
from metantk_plugin.fewshot.training import meta_train


def _sampler() -> EpisodeSampler:
    images = torch.zeros(8, 1, 4, 4)
    return EpisodeSampler(images, torch.arange(8) % 4, ways=2, shots=1, queries=1)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: _sampler().sample_indices(True, torch.Generator()), "n_tasks must be a positive int, got True"),
    (lambda: PretrainConfig(steps=True), "steps must be a positive int, got True"),
    (lambda: PretrainConfig(steps=1, batch_size=True), "batch_size must be a positive int, got True"),
    (lambda: Conv4(hidden=True), "Conv4 hidden must be a positive int, got True"),
    (lambda: meta_train(None, _sampler(), iterations=True, meta_batch=1), "iterations must be a positive int"),
    (lambda: meta_train(None, _sampler(), iterations=1, meta_batch=True), "meta_batch must be a positive int"),
    (lambda: evaluate_episodes(None, _sampler(), episodes=True), "episodes must be a positive int, got True"),
])
def test_true_is_not_a_size(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_true_is_not_an_nni_region_size():
    pytest.importorskip("nni")
    from metantk_plugin.integrations.nni.supernet import NNIPrunableSpace

    with pytest.raises(ValueError, match=r"region_image_size must be a positive int or None, got True"):
        NNIPrunableSpace(None, region_image_size=True)
