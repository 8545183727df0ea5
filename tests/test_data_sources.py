from __future__ import annotations

import pytest
import torch

from metantk_plugin.data.errors import DatasetError
from metantk_plugin.data.sources import DataSpec, load_split, parse_data_spec, task_sampler_from_spec


def test_parse_data_spec(tmp_path):
    assert parse_data_spec("synthetic") == DataSpec("synthetic")
    spec = parse_data_spec(f"Mini-ImageNet:{tmp_path}")
    assert spec == DataSpec("mini-imagenet", tmp_path) and str(spec) == f"mini-imagenet:{tmp_path}"
    assert spec.image_size == 84 and spec.channels == 3
    with pytest.raises(ValueError, match="unknown data kind 'imagenet'"):
        parse_data_spec("imagenet:/x")
    with pytest.raises(ValueError, match="has no path"):
        parse_data_spec("omniglot:")
    with pytest.raises(DatasetError, match="does not exist"):
        parse_data_spec(f"omniglot:{tmp_path / 'missing'}")
    with pytest.raises(ValueError, match="no split 'val'"):
        load_split(f"cifar10:{tmp_path}", "val")


def test_omniglot_tasks_at_any_size(shared_data):
    spec = f"omniglot:{shared_data / 'fewshot' / 'omniglot'}"
    sampler = task_sampler_from_spec(spec, split="val", image_size=32, channels=3, ways=5, shots=2, queries=3)
    tasks = sampler.sample(4, 0)
    assert tasks.support_x.shape == (4, 10, 3, 32, 32) and tasks.query_x.shape == (4, 15, 3, 32, 32)
    assert torch.equal(tasks.support_x, sampler.sample(4, 0).support_x)
    assert torch.equal(tasks.support_x[:, :, 0], tasks.support_x[:, :, 2])  # grey repeated
    ink = tasks.support_x.mean()
    assert 0.02 < float(ink) < 0.3  # inverted: strokes are 1 on a 0 background
    splits = {s: set(load_split(spec, s).class_names) for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [162, 40, 40]
    assert not splits["train"] & splits["test"] and not splits["val"] & splits["test"]


def test_synthetic_sampler_is_seeded():
    sampler = task_sampler_from_spec("synthetic", image_size=8, channels=1, ways=3, shots=1, queries=2)
    a, b = sampler.sample(2, 5), sampler.sample(2, 5)
    assert a.query_x.shape == (2, 6, 1, 8, 8) and torch.equal(a.query_x, b.query_x)
    assert not torch.equal(a.query_x, sampler.sample(2, 6).query_x)
