from __future__ import annotations

import numpy as np
import pytest
import torch

from metantk_plugin.data import episodes
from metantk_plugin.data.episodes import EpisodeSampler, concat_tasks, derive_seed
from metantk_plugin.data.images import LabelledImages
from metantk_plugin.data.splits import select_classes, shuffled_class_split, split_counts, with_rotated_classes


def _identity_store(counts):
    """Image i holds the value i, so a sampled pixel tells which image it was."""
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    images = torch.arange(len(labels), dtype=torch.float32).view(-1, 1, 1, 1)
    return images, labels


def test_episodes_have_distinct_classes_and_no_shared_images():
    images, labels = _identity_store([7, 9, 6, 12, 8, 10, 6])  # ragged class sizes
    sampler = EpisodeSampler(images, labels, ways=4, shots=2, queries=4)
    tasks = sampler.sample(50, 0)
    assert tasks.support_x.shape == (50, 8, 1, 1, 1) and tasks.query_x.shape == (50, 16, 1, 1, 1)
    for t in range(50):
        support = tasks.support_x[t].flatten().long()
        query = tasks.query_x[t].flatten().long()
        assert len(set(support.tolist()) | set(query.tolist())) == 24
        support_class, query_class = labels[support], labels[query]
        assert len(set(support_class.tolist())) == 4
        for label in range(4):  # one class per label, the same in support and query
            assert len(set(support_class[tasks.support_y[t] == label].tolist())) == 1
            assert set(query_class[tasks.query_y[t] == label].tolist()) == set(
                support_class[tasks.support_y[t] == label].tolist())
    assert tasks.support_y[0].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]


def test_sampling_is_a_function_of_the_seed():
    images, labels = _identity_store([10] * 20)
    sampler = EpisodeSampler(images, labels, ways=5, shots=1, queries=3, seed=4)
    a, b, c = sampler.sample(8, 11), sampler.sample(8, 11), sampler.sample(8, 12)
    assert torch.equal(a.query_x, b.query_x) and not torch.equal(a.query_x, c.query_x)
    generator = torch.Generator().manual_seed(11)
    assert torch.equal(sampler.sample(8, generator).query_x, a.query_x)
    first, second = sampler.sample(3), sampler.sample(3)  # the sampler's own generator advances
    assert not torch.equal(first.query_x, second.query_x)
    again = EpisodeSampler(images, labels, ways=5, shots=1, queries=3, seed=4)
    assert torch.equal(again.sample(3).query_x, first.query_x)
    one_by_one = concat_tasks([sampler.sample(1, s) for s in (1, 2)])
    assert torch.equal(sampler.sample_episodes([1, 2]).support_x, one_by_one.support_x)
    assert derive_seed(0, 1) != derive_seed(1, 0)


def test_every_class_and_image_gets_drawn():
    images, labels = _identity_store([5] * 6)
    tasks = EpisodeSampler(images, labels, ways=2, shots=1, queries=1).sample(400, 3)
    seen = torch.cat([tasks.support_x.flatten(), tasks.query_x.flatten()]).long()
    assert set(seen.tolist()) == set(range(30))


def test_bad_requests_are_explained():
    images, labels = _identity_store([3, 3, 2])
    with pytest.raises(ValueError, match="at least 4 classes"):
        EpisodeSampler(images, labels, ways=4, shots=1, queries=1)
    with pytest.raises(ValueError, match="class 2 has only 2"):
        EpisodeSampler(images, labels, ways=2, shots=1, queries=2)
    with pytest.raises(ValueError, match="shots"):
        EpisodeSampler(images, labels, ways=2, shots=0, queries=1)


def test_class_split_is_the_anchor_protocol():
    names = [f"alphabet{i % 7}/character{i:03d}" for i in range(242)]
    import random

    keys = sorted(names)
    random.Random(0).shuffle(keys)
    train, val, test = shuffled_class_split(names, [162, 40, 40], seed=0)
    assert [names[i] for i in train] == keys[:162] and [names[i] for i in test] == keys[202:]
    assert not set(train) & set(val) and not set(val) & set(test) and len(set(train + val + test)) == 242
    assert split_counts(242, (40 / 242, 40 / 242)) == [40, 40]
    with pytest.raises(ValueError, match="sum to 242"):
        shuffled_class_split(names, [100, 40, 40])


def test_select_and_rotate_classes():
    images = np.zeros((6, 3, 3, 1), dtype=np.uint8)
    images[:, 0, 2] = 255  # a mark in the top-right corner
    data = LabelledImages(images, np.array([0, 0, 1, 1, 2, 2]), ["a", "b", "c"])
    picked = select_classes(data, [2, 0])
    assert picked.class_names == ["c", "a"] and picked.labels.tolist() == [1, 1, 0, 0]
    rotated = with_rotated_classes(picked)
    assert len(rotated.classes) == 8 and rotated.class_names[2:4] == ["c@rot90", "a@rot90"]
    corners = [tuple(np.argwhere(rotated.images[rotated.labels == c][0, ..., 0])[0]) for c in (0, 2, 4, 6)]
    assert len(set(corners)) == 4  # each rotation moves the mark to another corner


def test_large_data_is_resized_per_batch_with_the_same_result(monkeypatch):
    rng = np.random.default_rng(0)
    data = LabelledImages(rng.integers(0, 256, (40, 20, 20, 1), dtype=np.uint8), np.repeat(np.arange(8), 5))
    eager = EpisodeSampler.from_images(data, ways=3, shots=1, queries=2, image_size=12, channels=3)
    monkeypatch.setattr(episodes, "_PREPARE_ONCE_BYTES", 100)
    lazy = EpisodeSampler.from_images(data, ways=3, shots=1, queries=2, image_size=12, channels=3)
    assert eager.prepare is None and lazy.prepare is not None and lazy.images.shape == (40, 20, 20, 1)
    a, b = eager.sample(5, 9), lazy.sample(5, 9)
    assert a.query_x.shape == (5, 6, 3, 12, 12) and torch.equal(a.query_x, b.query_x)
    assert torch.equal(a.support_x, b.support_x)
