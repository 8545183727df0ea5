"""Executors that apply one function to many items and yield the results in input order.

* ``local``: in this process, one item after the other.
* ``processes``: a pool of ``workers`` spawned Python processes.
* ``ray``: ``workers`` Ray tasks at a time, on the Ray instance already initialised in
  this process, or else on a local one started with ``ray.init(num_cpus=workers)``.

Workers run torch with ``threads_per_worker`` intra-op threads (1 by default), so scores
are computed with the same arithmetic as a single-threaded local run and the workers do
not fight over the cores. Results are yielded lazily and in order, with at most
``2 * workers`` items in flight, so a consumer can commit them as they come.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

from metantk_plugin.task_spec import check_positive_int

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "ProcessExecutor", "RayExecutor", "make_executor"]

EXECUTORS = ("local", "processes", "ray")


class Executor:
    """``map(fn, items)`` yields ``fn(item)`` in order; ``close()`` frees the workers.
    ``fn`` must be picklable for the parallel executors. Use as a context manager."""

    workers: int = 1

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        raise NotImplementedError

    def close(self) -> None:
        """Release the workers (idempotent)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalExecutor(Executor):
    """Runs every item in this process, with this process's torch threads."""

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        for item in items:
            yield fn(item)


def _check_workers(workers: int) -> int:
    check_positive_int("workers", workers)
    return workers


_WORKER_FN: Callable | None = None
_PR_SET_PDEATHSIG = 1


def _end_with_parent() -> None:
    """Ask Linux to end this worker when the process that started it dies, so a run killed
    with ``kill -9`` leaves no orphaned worker busy (elsewhere workers end at their next item)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() == 1:  # the parent died before the request was made
            os._exit(1)


def _set_torch_threads(threads: int) -> None:
    import torch  # here, so that the executor names import no torch

    torch.set_num_threads(threads)


def _install_worker(fn: Callable, threads: int) -> None:
    global _WORKER_FN
    _end_with_parent()
    _set_torch_threads(threads)
    _WORKER_FN = fn


def _call_worker(item):
    return _WORKER_FN(item)


class ProcessExecutor(Executor):
    """A pool of ``workers`` spawned processes; ``fn`` is sent once to each worker."""

    def __init__(self, workers: int = 2, *, threads_per_worker: int = 1):
        self.workers = _check_workers(workers)
        self.threads_per_worker = _check_workers(threads_per_worker)
        self._pool: ProcessPoolExecutor | None = None

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        self.close()
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_install_worker, initargs=(fn, self.threads_per_worker),
        )
        pool = self._pool
        return _ordered(lambda item: pool.submit(_call_worker, item), lambda fut: fut.result(), items,
                        2 * self.workers, cancel=lambda fut: fut.cancel())

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _ray_apply(fn: Callable, item, threads: int):
    _set_torch_threads(threads)
    return fn(item)


class RayExecutor(Executor):
    """``workers`` concurrent Ray tasks of one CPU each; ``fn`` is put in the object store once."""

    def __init__(self, workers: int = 2, *, threads_per_worker: int = 1):
        self.workers = _check_workers(workers)
        self.threads_per_worker = _check_workers(threads_per_worker)
        self._started_ray = False

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        try:
            import ray
        except ImportError:
            raise RuntimeError("the 'ray' executor needs Ray: pip install 'ray>=2.9'") from None
        if not ray.is_initialized():
            ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False)
            self._started_ray = True
        remote = ray.remote(num_cpus=1)(_ray_apply)
        fn_ref = ray.put(fn)

        def result(ref):
            try:
                return ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                raise exc.as_instanceof_cause() from None

        return _ordered(lambda item: remote.remote(fn_ref, item, self.threads_per_worker), result, items,
                        2 * self.workers, cancel=lambda ref: ray.cancel(ref))

    def close(self) -> None:
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False


def _ordered(submit: Callable, result: Callable, items: Iterable, window: int, *, cancel: Callable) -> Iterator:
    """Yield ``result(submit(item))`` in order with at most ``window`` submissions pending."""
    pending: deque = deque()
    iterator = iter(items)
    try:
        for item in iterator:
            pending.append(submit(item))
            if len(pending) >= window:
                yield result(pending.popleft())
        while pending:
            yield result(pending.popleft())
    finally:
        for handle in pending:
            cancel(handle)


def make_executor(kind: str, workers: int | None = None, *, threads_per_worker: int = 1) -> Executor:
    """An executor by name: ``local`` (``workers`` must be 1 or None), ``processes`` or ``ray``
    (``workers`` defaults to the number of CPUs)."""
    if kind not in EXECUTORS:
        raise ValueError(f"unknown executor {kind!r}; expected one of {', '.join(EXECUTORS)}")
    if kind == "local":
        if workers not in (None, 1):
            raise ValueError(f"the local executor runs one item at a time; got workers={workers} "
                             "(use --executor processes or ray for parallel scoring)")
        return LocalExecutor()
    workers = workers or multiprocessing.cpu_count()
    cls = ProcessExecutor if kind == "processes" else RayExecutor
    return cls(workers, threads_per_worker=threads_per_worker)

