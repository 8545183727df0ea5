"""The pure parts of the NASLib integration: few-shot tasks from one labelled batch, and
the NB201 encodings NASLib uses. No NASLib (or stand-in) needed."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metantk_plugin.integrations.naslib import (
    BatchTooSmallError,
    MeasureSettings,
    TaskShapeWarning,
    arch_str_to_op_indices,
    op_indices_to_arch_str,
    tasks_fitting_batch,
    tasks_from_batch,
)
from metantk_plugin.spaces.nasbench201 import NB201Arch, all_architectures


def _indexed_batch(labels: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs whose single pixel is the sample's position, so tasks reveal what was drawn."""
    n = len(labels)
    return torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1), torch.tensor(labels, dtype=torch.int64)


def _drawn(tasks) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch positions [T, S] of the support and [T, Q] of the query samples."""
    return tasks.support_x.flatten(2)[..., 0].long(), tasks.query_x.flatten(2)[..., 0].long()


def _check_tasks(tasks, targets: torch.Tensor, ways: int, shots: int, queries: int, n_tasks: int) -> None:
    support, query = _drawn(tasks)
    assert support.shape == (n_tasks, ways * shots) and query.shape == (n_tasks, ways * queries)
    everything = torch.cat([support.flatten(), query.flatten()])
    assert len(set(everything.tolist())) == everything.numel(), "a sample was drawn twice"
    for t in range(n_tasks):
        sy, qy = tasks.support_y[t], tasks.query_y[t]
        assert torch.equal(sy, torch.arange(ways).repeat(shots))  # shot-major labels 0..ways-1
        assert torch.equal(qy, torch.arange(ways).repeat(queries))
        original = {}
        for positions, labels in ((support[t], sy), (query[t], qy)):
            for position, label in zip(positions.tolist(), labels.tolist()):
                original.setdefault(label, set()).add(int(targets[position]))
        assert all(len(classes) == 1 for classes in original.values()), "a task label mixes two batch classes"
        assert len({next(iter(c)) for c in original.values()}) == ways, "two task labels share a batch class"


def test_tasks_are_disjoint_relabelled_and_seeded():
    labels = [i % 10 for i in range(64)]  # CIFAR-like batch: 10 classes, 6-7 samples each
    inputs, targets = _indexed_batch(labels)
    tasks = tasks_from_batch(inputs, targets, ways=5, shots=1, queries=1, n_tasks=3, seed=7)
    _check_tasks(tasks, targets, 5, 1, 1, 3)
    assert tasks.support_x.shape == (3, 5, 1, 1, 1) and tasks.ways == 5
    again = tasks_from_batch(inputs, targets, ways=5, shots=1, queries=1, n_tasks=3, seed=7)
    assert torch.equal(tasks.support_x, again.support_x) and torch.equal(tasks.query_x, again.query_x)
    other = tasks_from_batch(inputs, targets, ways=5, shots=1, queries=1, n_tasks=3, seed=8)
    assert not torch.equal(tasks.inputs(), other.inputs())


def test_tasks_use_only_classes_with_enough_samples():
    labels = [0] * 5 + [1] * 5 + [2] * 1 + [3] * 5 + [4] * 2  # class 2 cannot give shots + queries = 3
    inputs, targets = _indexed_batch(labels)
    for seed in range(20):
        tasks = tasks_from_batch(inputs, targets, ways=3, shots=2, queries=1, n_tasks=1, seed=seed)
        _check_tasks(tasks, targets, 3, 2, 1, 1)
        used = {int(targets[p]) for p in torch.cat([t.flatten() for t in _drawn(tasks)]).tolist()}
        assert used == {0, 1, 3}


def test_too_small_a_batch_is_a_clear_error():
    inputs, targets = _indexed_batch([0, 0, 1, 1, 2, 2, 3])
    with pytest.raises(ValueError, match=r"task 1 of 1: it needs 5 classes .* only 3 of the 4 classes"):
        tasks_from_batch(inputs, targets, ways=5, shots=1, queries=1, n_tasks=1)
    with pytest.raises(ValueError, match=r"cannot draw task 2 of 2"):  # one task fits, two do not
        tasks_from_batch(inputs, targets, ways=3, shots=1, queries=1, n_tasks=2)


def test_default_shape_adapts_to_a_batch_of_32_and_says_so():
    labels = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6, 7, 7, 8, 8, 9]
    inputs, targets = _indexed_batch(labels)  # 32 images of 10 classes, as NASLib's zero-cost runners feed
    with pytest.raises(BatchTooSmallError, match="cannot draw task"):
        tasks_from_batch(inputs, targets)  # 3 tasks of 5 classes with 2 unused images each do not fit
    with pytest.warns(TaskShapeWarning, match=r"batch of 32 samples holds no 3 tasks of 5-way 1-shot 1-query; "
                                              r"scored on 2 task\(s\) of 5-way 1-shot 1-query"):
        tasks = tasks_fitting_batch(inputs, targets, MeasureSettings())
    _check_tasks(tasks, targets, 5, 1, 1, 2)
    with pytest.raises(BatchTooSmallError, match="cannot draw task"):
        tasks_fitting_batch(inputs, targets, MeasureSettings(fit_batch=False))
    few = _indexed_batch([0, 0, 1, 1, 2, 2, 3, 4, 5, 6])
    with pytest.warns(TaskShapeWarning, match=r"scored on 1 task\(s\) of 3-way"):  # fewer ways when classes run out
        _check_tasks(tasks_fitting_batch(*few, MeasureSettings()), few[1], 3, 1, 1, 1)
    with pytest.raises(BatchTooSmallError, match="only 0 of the 4 classes"):  # not even 2 classes with 2 images
        tasks_fitting_batch(*_indexed_batch([0, 1, 2, 3]), MeasureSettings())


@pytest.mark.parametrize(
    ("inputs", "targets", "options", "message"),
    [
        (torch.zeros(4, 3, 2, 2), torch.zeros(4), {}, "integer class labels"),
        (torch.zeros(4, 3, 2, 2), torch.zeros(3, dtype=torch.long), {}, r"targets must be class labels \[N\]"),
        (torch.zeros(4), torch.zeros(4, dtype=torch.long), {}, "inputs must be a batch tensor"),
        (torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), {"ways": True}, "ways must be a positive int"),
        (torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), {"queries": 0}, "queries must be a positive int"),
        (torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), {"seed": 1.5}, "seed must be an int"),
        (torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), {"seed": 2**70}, r"seed must be an int in \[0, 2"),
    ],
)
def test_bad_batches_and_settings_are_named(inputs, targets, options, message):
    with pytest.raises(ValueError, match=message):
        tasks_from_batch(inputs, targets, **options)


@settings(max_examples=150, deadline=None)
@given(
    labels=st.lists(st.integers(0, 7), min_size=1, max_size=60),
    ways=st.integers(1, 4),
    shots=st.integers(1, 3),
    queries=st.integers(1, 3),
    n_tasks=st.integers(1, 4),
    seed=st.integers(0, 2**31),
)
def test_any_batch_gives_valid_tasks_or_a_value_error(labels, ways, shots, queries, n_tasks, seed):
    inputs, targets = _indexed_batch(labels)
    try:
        tasks = tasks_from_batch(inputs, targets, ways=ways, shots=shots, queries=queries, n_tasks=n_tasks, seed=seed)
    except ValueError as error:
        assert "Feed a larger batch" in str(error)
        return
    _check_tasks(tasks, targets, ways, shots, queries, n_tasks)


def test_nb201_encodings_follow_naslib_numbering():
    # NASLib: edges (1,2),(1,3),(1,4),(2,3),(2,4),(3,4); ops 0 skip, 1 none, 2 conv3x3, 3 conv1x1, 4 avg pool
    expected = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|nor_conv_1x1~0|nor_conv_1x1~1|nor_conv_3x3~2|"
    assert op_indices_to_arch_str((2, 2, 3, 4, 3, 2)) == expected
    assert op_indices_to_arch_str([0, 1, 1, 1, 1, 1]) == "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    assert arch_str_to_op_indices(expected) == (2, 2, 3, 4, 3, 2)
    for arch in all_architectures():
        assert arch_str_to_op_indices(op_indices_to_arch_str(arch.to_naslib())) == arch.to_naslib()
        assert op_indices_to_arch_str(arch_str_to_op_indices(arch.to_string())) == arch.to_string()
    assert arch_str_to_op_indices(NB201Arch.from_string(expected).index) == (2, 2, 3, 4, 3, 2)


@pytest.mark.parametrize("bad", [(2, 2, 3, 4, 3), (2, 2, 3, 4, 3, 5), "|nor_conv_3x3~0|+|none~0|"])
def test_bad_encodings_are_value_errors(bad):
    with pytest.raises(ValueError):
        if isinstance(bad, str):
            arch_str_to_op_indices(bad)
        else:
            op_indices_to_arch_str(bad)
