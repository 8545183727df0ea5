"""The training loop: seeded batches, a background thread that prepares the next batch
while the current one trains, periodic checkpoints, an optional wall budget.

Batch ``i`` (a meta-batch drawn with seed ``derive_seed(seed, i)``, or a batch of images)
depends only on the run's seed and ``i``; restoring the learner (and torch's global RNG,
used by dropout) from a checkpoint therefore continues exactly as the uninterrupted run
would have. :func:`seeded_global_rng` is the one place a run seeds that global RNG.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Generic, TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

from metantk_plugin.data.episodes import derive_seed
from metantk_plugin.interrupts import deferred_interrupt
from metantk_plugin.task_spec import check_positive_int

__all__ = ["Prefetcher", "TrainingHistory", "meta_train", "run_prefetched_steps", "run_steps",
           "seeded_global_rng"]

T = TypeVar("T")


@dataclass
class TrainingHistory:
    """One entry per step: ``iteration`` (1-based), mean query ``loss`` and ``accuracy``
    after adaptation, and wall ``seconds`` of the step; ``validation`` holds
    ``[iteration, accuracy, ci95]`` rows."""

    iteration: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    validation: list[list[float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainingHistory:
        return cls(**{key: list(value) for key, value in data.items()})

    def seconds_per_iteration(self) -> float:
        """Median wall time of a step (NaN before the first)."""
        return float(np.median(self.seconds)) if self.seconds else float("nan")


@contextlib.contextmanager
def seeded_global_rng(seed: int) -> Iterator[None]:
    """torch's global generator seeded with ``seed`` inside the block and restored after it.
    Module initialisation and dropout take no explicit generator, so a run draws them from
    this one; checkpoints store its state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class Prefetcher(Generic[T]):
    """``get(i)`` returns ``make(i)`` for ``i = start, start + 1, ...`` in order, having made
    it in a background thread while step ``i - 1`` ran (torch releases the GIL, so sampling
    and augmentation use the second core). Use as a context manager."""

    def __init__(self, make: Callable[[int], T], start: int, stop: int):
        self._make, self._stop = make, stop
        self._pool = ThreadPoolExecutor(max_workers=1, initializer=torch.set_num_threads,
                                        initargs=(torch.get_num_threads(),))
        self._pending: dict[int, Future] = {start: self._pool.submit(make, start)} if start < stop else {}

    def get(self, i: int) -> T:
        if i not in self._pending:
            raise ValueError(f"item {i} was not scheduled; items are fetched in order")
        item = self._pending.pop(i).result()
        if i + 1 < self._stop:
            self._pending[i + 1] = self._pool.submit(self._make, i + 1)
        return item

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc_info) -> None:
        for future in self._pending.values():
            future.cancel()
        self._pool.shutdown(wait=True)


def run_steps(
    step: Callable[[int], tuple[float, float]],
    *,
    start: int,
    stop: int,
    history: TrainingHistory,
    description: str = "meta-train",
    checkpoint: Callable[[int], None] | None = None,
    checkpoint_every: int = 0,
    validate: Callable[[int], tuple[float, float]] | None = None,
    validate_every: int = 0,
    time_budget: float | None = None,
    progress: bool = True,
) -> TrainingHistory:
    """Run ``step(i) -> (loss, accuracy)`` for ``i = start .. stop-1`` with a progress bar
    (it/s, running accuracy over the last 20 steps), appending to ``history``; call
    ``checkpoint(i + 1)`` every ``checkpoint_every`` steps and after the last one, and
    ``validate(i + 1) -> (accuracy, ci95)`` every ``validate_every`` steps. Stops early
    once ``time_budget`` seconds of steps have passed. Ctrl-C lets the current step finish,
    checkpoints it and then raises KeyboardInterrupt (a second Ctrl-C stops at once)."""
    began = time.perf_counter()
    done = saved = start
    with tqdm(total=stop, initial=start, desc=description, unit="it", disable=not progress) as bar, \
            deferred_interrupt() as interrupt:
        for i in range(start, stop):
            tick = time.perf_counter()
            loss, accuracy = step(i)
            history.seconds.append(time.perf_counter() - tick)
            history.iteration.append(i + 1)
            history.loss.append(float(loss))
            history.accuracy.append(float(accuracy))
            done = i + 1
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(history.loss[-20:]):.3f}", acc=f"{np.mean(history.accuracy[-20:]):.3f}")
            if validate is not None and validate_every and done % validate_every == 0:
                history.validation.append([done, *validate(done)])
            out_of_time = time_budget is not None and time.perf_counter() - began >= time_budget
            if checkpoint is not None and checkpoint_every and done % checkpoint_every == 0:
                checkpoint(done)
                saved = done
            if interrupt.requested:
                if checkpoint is not None and done != saved:
                    checkpoint(done)
                raise KeyboardInterrupt
            if out_of_time:
                break
    if checkpoint is not None and done != saved:
        checkpoint(done)
    return history


def run_prefetched_steps(
    make: Callable[[int], T],
    step: Callable[[int, T], tuple[float, float]],
    *,
    start: int,
    stop: int,
    history: TrainingHistory,
    **loop,
) -> TrainingHistory:
    """:func:`run_steps` over ``step(i, make(i))``, each ``make(i)`` prepared by a
    :class:`Prefetcher` while step ``i - 1`` runs; ``loop``: the other arguments of
    :func:`run_steps`."""
    with Prefetcher(make, start, stop) as batches:
        return run_steps(lambda i: step(i, batches.get(i)), start=start, stop=stop, history=history, **loop)


def meta_train(
    learner,
    sampler,
    *,
    iterations: int,
    meta_batch: int,
    seed: int = 0,
    start: int = 0,
    history: TrainingHistory | None = None,
    **loop,
) -> TrainingHistory:
    """Meta-train ``learner`` (a :class:`~metantk_plugin.fewshot.maml.MetaLearner`) on
    meta-batches of ``meta_batch`` tasks from ``sampler`` for iterations ``start ..
    iterations-1``; ``loop``: ``checkpoint``, ``checkpoint_every``, ``validate``,
    ``validate_every``, ``time_budget`` and ``progress``, as :func:`run_steps` takes them."""
    for name, value in (("iterations", iterations), ("meta_batch", meta_batch)):
        check_positive_int(name, value)
    if not 0 <= start <= iterations:
        raise ValueError(f"start must lie in 0..{iterations}, got {start}")
    return run_prefetched_steps(lambda i: sampler.sample(meta_batch, derive_seed(seed, i)),
                                lambda i, tasks: learner.meta_step(tasks), start=start, stop=iterations,
                                history=history if history is not None else TrainingHistory(), **loop)
