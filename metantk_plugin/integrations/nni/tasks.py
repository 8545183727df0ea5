"""The few-shot tasks the NNI adapters score networks on, and how they score them
(:class:`ProxyScoring`, shared by the evaluator and the filter).

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

import math
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from metantk_plugin.integrations.nni.network import _check_norm
from metantk_plugin.integrations.nni.scoring import INVALID_SCORE, ProxyScore, score_network
from metantk_plugin.proxies.registry import get_proxy
from metantk_plugin.task_spec import TaskSampler, TaskSpec, as_task_sampler, check_positive_int
from metantk_plugin.tasks import TaskBatch

__all__ = ["ProxyScoring", "resolve_tasks", "task_source"]


def task_source(tasks: TaskBatch | str | None, task_options: dict[str, Any] | None = None) -> TaskSampler:
    """The :class:`~metantk_plugin.task_spec.TaskSampler` of ``tasks``; a fixed TaskBatch is
    returned whatever is asked."""
    if isinstance(tasks, TaskBatch):
        if task_options:
            raise ValueError(f"task_options {task_options} apply to a data spec, not to a ready TaskBatch")
        return as_task_sampler(lambda n_tasks, seed: tasks)
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

    return task_sampler_from_spec(tasks, **(task_options or {}))


def resolve_tasks(tasks: TaskBatch | str | None, *, n_tasks: int = TaskSpec.n_tasks, task_seed: int = 0,
                  task_options: dict[str, Any] | None = None) -> TaskBatch:
    """One meta-batch: ``tasks`` itself, or ``n_tasks`` tasks drawn with ``task_seed``."""
    check_positive_int("n_tasks", n_tasks)
    return task_source(tasks, task_options).sample(n_tasks, task_seed)


@dataclass(frozen=True, eq=False)  # eq=False: tensors have no single truth value
class ProxyScoring:
    """How the NNI adapters score a model (validated on construction): the registered proxy
    ``proxy`` on the meta-batch ``tasks``; ``seed`` re-draws the model's weights and seeds
    the proxy; ``norm`` and ``feature_layer`` as in :func:`kernel_ready`; ``invalid_score``
    replaces non-finite scores; ``proxy_options`` are passed to the proxy (e.g.
    ``{'algorithm': 'anil'}``); ``device`` runs the kernels."""

    tasks: TaskBatch
    proxy: str = "metantk"
    seed: int = 0
    norm: str = "group"
    feature_layer: str | None = "auto"
    invalid_score: float = INVALID_SCORE
    proxy_options: dict[str, Any] = field(default_factory=dict)
    device: str | None = None

    def __post_init__(self) -> None:
        _check_scoring(self.proxy, self.norm, self.invalid_score, self.proxy_options)
        object.__setattr__(self, "invalid_score", float(self.invalid_score))
        object.__setattr__(self, "proxy_options", dict(self.proxy_options))

    @classmethod
    def from_options(
        cls,
        proxy: str = "metantk",
        *,
        tasks: TaskBatch | str | None = None,
        n_tasks: int = TaskSpec.n_tasks,
        task_seed: int = 0,
        task_options: dict | None = None,
        seed: int = 0,
        norm: str = "group",
        feature_layer: str | None = "auto",
        invalid_score: float = INVALID_SCORE,
        proxy_options: dict | None = None,
        device: str | None = None,
    ) -> ProxyScoring:
        """The keyword arguments of the adapters: ``tasks``, ``n_tasks``, ``task_seed`` and
        ``task_options`` draw the meta-batch once (:func:`resolve_tasks`), after the other
        arguments are checked; the rest are the fields."""
        proxy_options = {} if proxy_options is None else proxy_options
        _check_scoring(proxy, norm, invalid_score, proxy_options)  # before drawing the tasks
        scoring = {"proxy": proxy, "seed": seed, "norm": norm, "feature_layer": feature_layer,
                   "invalid_score": invalid_score, "device": device, "proxy_options": proxy_options}
        return cls(resolve_tasks(tasks, n_tasks=n_tasks, task_seed=task_seed, task_options=task_options), **scoring)

    def score(self, model: nn.Module) -> ProxyScore:
        """The proxy score of ``model``."""
        return score_network(model, self.tasks, proxy=self.proxy, seed=self.seed, norm=self.norm,
                             feature_layer=self.feature_layer, invalid_score=self.invalid_score,
                             device=self.device, **self.proxy_options)


def _check_scoring(proxy: str, norm: str, invalid_score: float, proxy_options: dict) -> None:
    get_proxy(proxy)  # a ValueError lists the registered names
    _check_norm(norm)
    if not isinstance(invalid_score, (int, float)) or not math.isfinite(invalid_score):
        raise ValueError(f"invalid_score must be a finite number, got {invalid_score!r}")
    if not isinstance(proxy_options, dict):
        raise ValueError(f"proxy_options must be a dict of keyword arguments, got {proxy_options!r}")
