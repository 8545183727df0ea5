"""Executors: results in input order, errors surface, and the parallel executors (a
process pool and real Ray) give exactly the scores of the local one."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import pytest
from cli_support import process_alive, spawned_children

from metantk_plugin.scoring.executors import LocalExecutor, ProcessExecutor, RayExecutor, make_executor
from metantk_plugin.scoring.run import ArchitectureScorer, sample_tasks
from metantk_plugin.scoring.settings import ScoreSettings

ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|",
    "|skip_connect~0|+|none~0|nor_conv_3x3~1|+|nor_conv_1x1~0|skip_connect~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|",
]


def _scorer() -> ArchitectureScorer:
    settings = ScoreSettings(proxies=("metantk", "grad_norm", "zen", "nwot"), n_tasks=2, ways=3, image_size=8,
                             channels=3, cells=1, seed=2)
    return ArchitectureScorer(settings, sample_tasks(settings))


def test_make_executor_validates():
    assert isinstance(make_executor("local"), LocalExecutor)
    assert make_executor("processes", 3).workers == 3
    with pytest.raises(ValueError, match="unknown executor 'threads'"):
        make_executor("threads")
    with pytest.raises(ValueError, match="one item at a time; got workers=4"):
        make_executor("local", 4)
    with pytest.raises(ValueError, match="workers must be a positive int, got 0"):
        ProcessExecutor(0)
    with pytest.raises(ValueError, match="workers must be a positive int, got 0"):
        make_executor("processes", 0)  # not the default in disguise


def test_processes_keep_order_surface_errors_and_match_local():
    scorer = _scorer()
    local = list(LocalExecutor().map(scorer, ARCHS))
    with ProcessExecutor(2) as pool:
        with pytest.raises(ValueError, match="negative"):
            list(pool.map(math.factorial, [1, 2, -1, 3]))
        rows = list(pool.map(scorer, ARCHS))
    assert [r.arch for r in rows] == ARCHS
    assert [r.scores for r in rows] == [r.scores for r in local]


def test_ray_matches_local_exactly():
    ray = pytest.importorskip("ray")
    scorer = _scorer()
    local = [r.scores for r in LocalExecutor().map(scorer, ARCHS)]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        executor = RayExecutor(2)
        rows = list(executor.map(scorer, ARCHS))
        assert list(executor.map(math.factorial, [3, 4])) == [6, 24]
        with pytest.raises(ValueError, match="negative"):
            list(executor.map(math.factorial, [1, -1]))
        with pytest.raises(OSError, match="Ray could not finish a task: WorkerCrashedError"):
            list(executor.map(os._exit, [1]))  # the worker dies, on every retry
        executor.close()
        assert ray.is_initialized()  # an instance the caller started is left running
    finally:
        ray.shutdown()
    assert [r.arch for r in rows] == ARCHS
    assert [r.scores for r in rows] == local


_SLOW_POOL = """
import time
from metantk_plugin.scoring.executors import ProcessExecutor
with ProcessExecutor(2) as pool:
    for _ in pool.map(time.sleep, [60] * 4):
        pass
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_workers_end_when_their_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", _SLOW_POOL])
    deadline = time.monotonic() + 240  # a loaded 2-core machine can take minutes to start two workers
    workers: list[int] = []
    while len(workers) < 2 and time.monotonic() < deadline and parent.poll() is None:
        time.sleep(0.2)
        workers = spawned_children(parent.pid)
    assert len(workers) >= 2, f"the pool's workers did not start (parent exit code {parent.poll()})"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    while any(process_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(process_alive(pid) for pid in workers)


class _Counter:
    """Counts its calls: in a pool, each worker's copy counts the calls that worker served."""

    def __init__(self):
        self.calls = 0

    def __call__(self, _item) -> tuple[int, int]:
        self.calls += 1
        return os.getpid(), self.calls


def test_a_pool_serves_every_map_of_one_function_and_stops_at_once_on_an_exception():
    counter = _Counter()
    pool = ProcessExecutor(2)
    with pytest.raises(KeyboardInterrupt):
        with pool:
            first = list(pool.map(counter, range(6)))
            again = list(pool.map(counter, range(6)))
            calls_per_worker: dict[int, int] = {}
            for pid, calls in first + again:
                calls_per_worker[pid] = max(calls, calls_per_worker.get(pid, 0))
            assert sum(calls_per_worker.values()) == 12  # the same workers, with the state of the first map
            other = {pid for pid, _ in pool.map(_Counter(), range(4))}
            assert not other & set(calls_per_worker)  # another function: another pool
            sleeping = pool.map(time.sleep, [0, 60, 60])
            next(sleeping)
            workers = spawned_children(os.getpid())
            assert len(workers) == 2
            stopped = time.monotonic()
            raise KeyboardInterrupt  # as Ctrl-C would, while both workers sleep
    assert time.monotonic() - stopped < 30
    assert not any(process_alive(pid) for pid in workers)
