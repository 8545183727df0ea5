"""The few-shot tasks the NNI adapters score networks on.

``tasks`` is one of

* a :class:`TaskBatch`: used as is (in-process only: NNI cannot serialise tensors into
  its trial processes);
* a data spec string of :func:`metantk_plugin.data.sources.task_sampler_from_spec`
  (``'synthetic'``, ``'mini-imagenet:PATH'``, ...), with ``task_options`` its keyword
  arguments (``image_size``, ``channels``, ``ways``, ``shots``, ``queries``, ``split``);
* None: ``'synthetic'``, i.e. 5-way 1-shot 1-query tasks of 32x32 RGB images, the CIFAR
  input of NNI's NAS-Bench-201 space.
"""

from __future__ import annotations

from typing import Any, Callable

from metantk_plugin.tasks import TaskBatch

__all__ = ["resolve_tasks", "task_source"]


def task_source(tasks: TaskBatch | str | None, task_options: dict[str, Any] | None = None
                ) -> Callable[[int, int], TaskBatch]:
    """``source(n_tasks, seed) -> TaskBatch``; a fixed TaskBatch is returned whatever is asked."""
    if isinstance(tasks, TaskBatch):
        if task_options:
            raise ValueError(f"task_options {task_options} apply to a data spec, not to a ready TaskBatch")
        return lambda n_tasks, seed: tasks
    if tasks is None:
        tasks = "synthetic"
    if not isinstance(tasks, str):
        raise ValueError(
            f"tasks must be a TaskBatch, a data spec string such as 'synthetic' or 'mini-imagenet:PATH', or None; "
            f"got {type(tasks).__name__}"
        )
    if task_options is not None and not isinstance(task_options, dict):
        raise ValueError(f"task_options must be a dict of task_sampler_from_spec arguments, got {task_options!r}")
    from metantk_plugin.data.sources import task_sampler_from_spec

    sampler = task_sampler_from_spec(tasks, **(task_options or {}))
    return sampler.sample


def resolve_tasks(tasks: TaskBatch | str | None, *, n_tasks: int = 3, task_seed: int = 0,
                  task_options: dict[str, Any] | None = None) -> TaskBatch:
    """One meta-batch: ``tasks`` itself, or ``n_tasks`` tasks drawn with ``task_seed``."""
    if not isinstance(n_tasks, int) or n_tasks < 1:
        raise ValueError(f"n_tasks must be a positive int, got {n_tasks!r}")
    return task_source(tasks, task_options)(n_tasks, task_seed)
