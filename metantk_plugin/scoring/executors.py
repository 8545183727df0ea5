"""Executors that apply one function to many items and yield the results in input order.

* ``local``: in this process, one item after the other.
* ``processes``: a pool of ``workers`` spawned Python processes.
* ``ray``: ``workers`` Ray tasks at a time, on the Ray instance already initialised in
  this process, else on the running cluster at ``address`` (or ``RAY_ADDRESS``), else on a
  local one started with ``ray.init(num_cpus=workers)``.

Process workers keep freed memory for reuse (:func:`~metantk_plugin.allocator.keep_freed_memory`);
Ray's workers, which other tasks share, are left as they are.

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
import socket
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

from metantk_plugin.allocator import keep_freed_memory
from metantk_plugin.task_spec import check_positive_int

__all__ = ["EXECUTORS", "RAY_ADDRESS_VARIABLE", "Executor", "LocalExecutor", "ProcessExecutor", "RayExecutor",
           "make_executor"]

EXECUTORS = ("local", "processes", "ray")
RAY_ADDRESS_VARIABLE = "RAY_ADDRESS"  # Ray's own: the cluster a driver connects to


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
    keep_freed_memory()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which stops the pool
    _set_torch_threads(threads)
    _WORKER_FN = fn


def _call_worker(item):
    return _WORKER_FN(item)


class ProcessExecutor(Executor):
    """A pool of ``workers`` spawned processes; ``fn`` is sent once to each worker, and
    the pool serves every ``map`` of the same ``fn`` object (its state stays in the workers).
    The workers ignore Ctrl-C: the parent stops them, at once when it closes the pool
    because of an exception (Ctrl-C included), else after their current items."""

    def __init__(self, workers: int = 2, *, threads_per_worker: int = 1):
        self.workers = _check_workers(workers)
        self.threads_per_worker = _check_workers(threads_per_worker)
        self._pool: ProcessPoolExecutor | None = None
        self._fn: Callable | None = None

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        if self._pool is None or fn is not self._fn:
            self.close()
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_install_worker, initargs=(fn, self.threads_per_worker),
            )
            self._fn = fn
        pool = self._pool
        return _ordered(lambda item: pool.submit(_call_worker, item), lambda fut: fut.result(), items,
                        2 * self.workers, cancel=lambda fut: fut.cancel())

    def close(self, *, now: bool = False) -> None:
        """Stop the workers after their current items, or at once when ``now``."""
        if self._pool is not None:
            pool, self._pool, self._fn = self._pool, None, None
            if now:  # ProcessPoolExecutor has no public way to stop a running item
                processes = list((getattr(pool, "_processes", None) or {}).values())
                pool.shutdown(wait=False, cancel_futures=True)
                for process in processes:
                    process.terminate()
                for process in processes:
                    process.join()
            else:
                pool.shutdown(wait=True, cancel_futures=True)

    def __exit__(self, exc_type, *exc) -> None:
        self.close(now=exc_type is not None)


def _ray_apply(fn: Callable, item, threads: int):
    _set_torch_threads(threads)
    return fn(item)


class RayExecutor(Executor):
    """``workers`` concurrent Ray tasks of one CPU each; ``fn`` is put in the object store once.

    Runs on the Ray instance already initialised in this process, else on the running
    cluster at ``address`` (its head's ``HOST:PORT``, ``ray://HOST:PORT`` or ``auto``;
    default: the ``RAY_ADDRESS`` environment variable; ``local`` or none), else on a local instance of
    ``workers`` CPUs started here. ``workers`` defaults to the CPUs of the cluster, or of
    this machine. :meth:`close` shuts down only an instance started here; from a cluster it
    disconnects. Ray retries the tasks of a worker or node that dies (3 times); when the
    retries fail too, ``map`` raises OSError.
    """

    def __init__(self, workers: int | None = None, *, threads_per_worker: int = 1, address: str | None = None):
        self.workers = None if workers is None else _check_workers(workers)
        self.threads_per_worker = _check_workers(threads_per_worker)
        address = address or os.environ.get(RAY_ADDRESS_VARIABLE) or "local"
        self.address = None if address == "local" else address  # Ray's word for "start one here"
        if self.address is not None:
            _check_reachable(self.address)  # before any work; Ray itself retries for minutes
        self._connected = False

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        try:
            import ray
        except ImportError:
            raise ImportError("the 'ray' executor needs Ray: pip install 'ray>=2.9'") from None
        if not ray.is_initialized():
            self._connect(ray)
        workers = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        remote = ray.remote(num_cpus=1)(_ray_apply)
        fn_ref = ray.put(fn)

        def result(ref):
            try:
                return ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                raise exc.as_instanceof_cause() from None
            except ray.exceptions.RayError as exc:  # its worker or node died, and so did Ray's retries
                first_line = next(iter(str(exc).splitlines()), "")
                raise OSError(f"Ray could not finish a task: {type(exc).__name__}: {first_line}") from exc

        return _ordered(lambda item: remote.remote(fn_ref, item, self.threads_per_worker), result, items,
                        2 * workers, cancel=lambda ref: ray.cancel(ref))

    def _connect(self, ray) -> None:
        if self.address is None:
            ray.init(address="local", num_cpus=self.workers or multiprocessing.cpu_count(), include_dashboard=False,
                     log_to_driver=False)
        else:
            try:
                ray.init(address=self.address, log_to_driver=False)
            except Exception as error:  # a version mismatch, a refused token, ...: one line naming the address
                raise ConnectionError(f"cannot connect to the Ray cluster at {self.address}: "
                                      f"{type(error).__name__}: {error}") from error
        self._connected = True

    def close(self) -> None:
        if self._connected:
            import ray

            ray.shutdown()  # stops a local instance; leaves a cluster running
            self._connected = False


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """ConnectionError naming ``address`` unless a connection to its ``HOST:PORT`` opens
    within ``timeout`` seconds (``auto`` is left to Ray, which finds a cluster on this machine)."""
    if address == "auto":
        return
    host, sep, port = address.rpartition("://")[2].rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"Ray address {address!r} is not HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        raise ConnectionError(f"cannot reach the Ray cluster at {address}: {error.strerror or error}") from None


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


def make_executor(kind: str, workers: int | None = None, *, threads_per_worker: int = 1,
                  ray_address: str | None = None) -> Executor:
    """An executor by name: ``local`` (``workers`` must be 1 or None), ``processes`` or ``ray``
    (``workers`` defaults to the number of CPUs; ``ray_address``, a running cluster, see
    :class:`RayExecutor`)."""
    if kind not in EXECUTORS:
        raise ValueError(f"unknown executor {kind!r}; expected one of {', '.join(EXECUTORS)}")
    if ray_address and kind != "ray":
        raise ValueError(f"a Ray address ({ray_address}) is for the ray executor; got executor {kind!r} "
                         "(use --executor ray)")
    if kind == "ray":
        return RayExecutor(workers, threads_per_worker=threads_per_worker, address=ray_address)
    if kind == "local":
        if workers not in (None, 1):
            raise ValueError(f"the local executor runs one item at a time; got workers={workers} "
                             "(use --executor processes or ray for parallel scoring)")
        return LocalExecutor()
    return ProcessExecutor(multiprocessing.cpu_count() if workers is None else workers,
                           threads_per_worker=threads_per_worker)

