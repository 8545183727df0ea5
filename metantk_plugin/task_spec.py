"""The few-shot task spec: which tasks a network is scored or searched on, checked once.

A :class:`TaskSpec` names ``n_tasks`` ``ways``-way tasks with ``shots`` support and
``queries`` query images per class, drawn from ``data`` (a data spec such as
``'synthetic'`` or ``'omniglot:PATH'``) at ``image_size`` x ``image_size`` with
``image_channels`` channels, so a meta-batch of inputs is
``[n_tasks, ways * (shots + queries), image_channels, image_size, image_size]``.
A :class:`TaskSampler` is anything that draws such meta-batches.

This module imports neither torch nor data readers, so command-line parsers can read
the fields (see :mod:`metantk_plugin.cli_options`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from metantk_plugin.cli_options import option

if TYPE_CHECKING:
    import torch

    from metantk_plugin.tasks import TaskBatch

__all__ = [
    "TaskSampler",
    "TaskSpec",
    "as_task_sampler",
    "check_optional_positive_int",
    "check_positive_int",
]


def check_positive_int(name: str, value: Any) -> None:
    """ValueError unless ``value`` is an int >= 1 (``True`` is not a size)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_optional_positive_int(name: str, value: Any, *, none: str = "") -> None:
    """:func:`check_positive_int`, with None allowed; ``none`` says what None means."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        meaning = f" ({none})" if none else ""
        raise ValueError(f"{name} must be a positive int or None{meaning}, got {value!r}")


@dataclass(frozen=True)
class TaskSpec:
    """Few-shot tasks to score or search on (validated on construction); the defaults are
    the reference proxy tasks: 3 synthetic 5-way 1-shot 1-query tasks of 32x32 RGB images."""

    data: str = option("synthetic", "synthetic (default), omniglot:PATH, cifar10:PATH, cifar100:PATH, "
                                    "imagenet16:PATH, mini-imagenet:PATH or tiered-imagenet:PATH; tasks come from its "
                                    "training classes", metavar="SPEC")
    n_tasks: int = option(3, "number of tasks", flag="--tasks")
    ways: int = option(5, "classes per task")
    shots: int = option(1, "support images per class")
    queries: int = option(1, "query images per class")
    image_size: int = option(32, "images are resized to this square size")
    image_channels: int = option(3, "image channels fed to the network")

    def __post_init__(self) -> None:
        if not isinstance(self.data, str):
            raise ValueError(f"data must be a data spec string such as 'synthetic', got {self.data!r}")
        for name in ("n_tasks", "ways", "shots", "queries", "image_size", "image_channels"):
            check_positive_int(name, getattr(self, name))

    def sampler(self, *, split: str = "train", seed: int = 0) -> TaskSampler:
        """A sampler of these tasks from ``split`` of the data
        (:func:`~metantk_plugin.data.sources.task_sampler_from_spec`)."""
        from metantk_plugin.data.sources import task_sampler_from_spec

        return task_sampler_from_spec(self.data, split=split, image_size=self.image_size,
                                      channels=self.image_channels, ways=self.ways, shots=self.shots,
                                      queries=self.queries, seed=seed)


@runtime_checkable
class TaskSampler(Protocol):
    """Draws seeded meta-batches: ``sample(n_tasks, generator_or_seed) -> TaskBatch``
    (:class:`~metantk_plugin.data.episodes.EpisodeSampler`,
    :class:`~metantk_plugin.data.sources.SyntheticTaskSampler`, ...)."""

    def sample(self, n_tasks: int, generator_or_seed: torch.Generator | int | None = None) -> TaskBatch: ...


@dataclass(frozen=True)
class _FunctionSampler:
    """A :class:`TaskSampler` around a function ``source(n_tasks, seed) -> TaskBatch``."""

    source: Callable[[int, int], TaskBatch]

    def sample(self, n_tasks: int, generator_or_seed: torch.Generator | int | None = None) -> TaskBatch:
        return self.source(n_tasks, generator_or_seed)


def as_task_sampler(source: TaskSampler | Callable[[int, int], TaskBatch]) -> TaskSampler:
    """``source`` itself when it is a :class:`TaskSampler`, else a sampler calling the
    function ``source(n_tasks, seed)``."""
    if isinstance(source, TaskSampler):
        return source
    if not callable(source):
        raise ValueError(f"tasks must come from a TaskSampler or a function source(n_tasks, seed), got {source!r}")
    return _FunctionSampler(source)
