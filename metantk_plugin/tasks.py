"""A validated meta-batch of few-shot tasks.

Shapes: ``support_x`` is ``[T, ways*shots, C, H, W]`` and ``query_x`` is
``[T, ways*queries, C, H, W]``; labels are ``[T, ways*shots]`` / ``[T, ways*queries]``
with values in ``0..ways-1``. Kernels see the samples in one fixed order: all
queries task by task, then all supports task by task (see :meth:`TaskBatch.inputs`).
Which tasks to draw (:class:`TaskSpec`) and what draws them (:class:`TaskSampler`) live in
:mod:`metantk_plugin.task_spec`, re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metantk_plugin.task_spec import TaskSampler, TaskSpec, check_positive_int

__all__ = ["TaskBatch", "TaskSampler", "TaskSpec", "check_sizes", "synthetic_tasks"]


@dataclass(frozen=True)
class TaskBatch:
    """Support and query sets of ``n_tasks`` N-way K-shot tasks."""

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    ways: int

    def __post_init__(self) -> None:
        sx, sy, qx, qy = self.support_x, self.support_y, self.query_x, self.query_y
        for name, value in (("support_x", sx), ("support_y", sy), ("query_x", qx), ("query_y", qy)):
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"TaskBatch.{name} must be a torch.Tensor, got {type(value).__name__}")
        check_positive_int("ways", self.ways)
        if sx.dim() < 3 or qx.dim() < 3:
            raise ValueError(
                "support_x and query_x must be [tasks, samples, *input_shape]; "
                f"got support_x {tuple(sx.shape)} and query_x {tuple(qx.shape)}"
            )
        if sx.shape[0] != qx.shape[0]:
            raise ValueError(f"support has {sx.shape[0]} tasks but query has {qx.shape[0]}")
        if sx.shape[2:] != qx.shape[2:]:
            raise ValueError(
                f"support inputs {tuple(sx.shape[2:])} and query inputs {tuple(qx.shape[2:])} differ in shape"
            )
        if tuple(sy.shape) != tuple(sx.shape[:2]) or tuple(qy.shape) != tuple(qx.shape[:2]):
            raise ValueError(
                f"labels must be [tasks, samples]: support_y {tuple(sy.shape)} vs support_x "
                f"{tuple(sx.shape[:2])}, query_y {tuple(qy.shape)} vs query_x {tuple(qx.shape[:2])}"
            )
        for name, n in (("support", sx.shape[1]), ("query", qx.shape[1])):
            if n == 0 or n % self.ways:
                raise ValueError(f"{name} set has {n} samples per task, not a positive multiple of ways={self.ways}")
        for name, labels in (("support_y", sy), ("query_y", qy)):
            if labels.dtype.is_floating_point or labels.dtype == torch.bool:
                raise ValueError(f"{name} must hold integer class labels, got dtype {labels.dtype}")
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.ways):
                raise ValueError(
                    f"{name} values must lie in 0..{self.ways - 1}, got {int(labels.min())}..{int(labels.max())}"
                )

    @property
    def n_tasks(self) -> int:
        return int(self.support_x.shape[0])

    @property
    def n_support(self) -> int:
        """Support samples per task (ways * shots)."""
        return int(self.support_x.shape[1])

    @property
    def n_query(self) -> int:
        """Query samples per task (ways * queries)."""
        return int(self.query_x.shape[1])

    @property
    def shots(self) -> int:
        return self.n_support // self.ways

    @property
    def queries(self) -> int:
        return self.n_query // self.ways

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.support_x.shape[2:])

    def inputs(self) -> torch.Tensor:
        """All samples, ``[T*(n_query+n_support), *input_shape]``: queries task by task, then supports."""
        return torch.cat([self.query_x.flatten(0, 1), self.support_x.flatten(0, 1)])

    def labels(self) -> torch.Tensor:
        """Labels in the order of :meth:`inputs`."""
        return torch.cat([self.query_y.flatten(), self.support_y.flatten()])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> TaskBatch:
        """Move the inputs to ``device`` and cast them (not the labels) to ``dtype``."""
        return TaskBatch(
            self.support_x.to(device=device, dtype=dtype),
            self.support_y.to(device=device),
            self.query_x.to(device=device, dtype=dtype),
            self.query_y.to(device=device),
            self.ways,
        )


def check_sizes(**sizes: int) -> None:
    """ValueError naming the first of ``sizes`` that is not a positive int."""
    for name, value in sizes.items():
        check_positive_int(name, value)


def synthetic_tasks(
    n_tasks: int = 3,
    ways: int = 5,
    shots: int = 1,
    queries: int = 1,
    image_size: int = 32,
    channels: int = 3,
    seed: int = 0,
) -> TaskBatch:
    """Class-structured Gaussian tasks: each class has a random prototype image, and
    each sample is its prototype plus noise (std 0.5), so tasks carry real signal."""
    check_sizes(n_tasks=n_tasks, ways=ways, shots=shots, queries=queries, image_size=image_size, channels=channels)
    gen = torch.Generator().manual_seed(seed)
    shape = (channels, image_size, image_size)
    prototypes = torch.randn(n_tasks, ways, *shape, generator=gen)

    def draw(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(ways).repeat(per_class)
        noise = 0.5 * torch.randn(n_tasks, ways * per_class, *shape, generator=gen)
        return prototypes[:, labels] + noise, labels.expand(n_tasks, -1).clone()

    sx, sy = draw(shots)
    qx, qy = draw(queries)
    return TaskBatch(sx, sy, qx, qy, ways)
