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
        workers = _children(parent.pid)
    assert len(workers) >= 2, f"the pool's workers did not start (parent exit code {parent.poll()})"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "spawn_main" in line]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
