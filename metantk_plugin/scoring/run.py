"""Score many architectures with many proxies into a resumable score file.

Every architecture of a run is scored on the same TaskBatch (drawn once from the run's
data spec and seed, then shipped to the workers) with the same proxy seed; its networks
are built from :func:`~metantk_plugin.scoring.settings.architecture_seed`, so a score does
not depend on the executor, the worker or the order.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from metantk_plugin.proxies.registry import POPULATION, compute_proxy, resolve_proxy
from metantk_plugin.scoring.architectures import build_architecture, canonical_architecture
from metantk_plugin.scoring.executors import make_executor
from metantk_plugin.scoring.settings import ScoreSettings, architecture_seed
from metantk_plugin.scoring.store import RunSummary, ScoreRow, commit_stream, open_run
from metantk_plugin.task_spec import check_positive_int
from metantk_plugin.tasks import TaskBatch

__all__ = ["ArchitectureScorer", "RunSummary", "sample_tasks", "score_architectures"]


def sample_tasks(settings: ScoreSettings) -> TaskBatch:
    """The TaskBatch every proxy of the run sees: ``n_tasks`` tasks from the training split
    of ``settings.data``, drawn from ``settings.seed``."""
    spec = settings.task_spec
    return spec.sampler(seed=settings.seed).sample(spec.n_tasks, settings.seed)


@dataclass(frozen=True)
class ArchitectureScorer:
    """``scorer(arch) -> ScoreRow``: every column of ``settings`` for one architecture string."""

    settings: ScoreSettings
    tasks: TaskBatch

    def __call__(self, arch: str) -> ScoreRow:
        start = time.perf_counter()
        s = self.settings
        device, dtype = torch.device(s.device), getattr(torch, s.dtype)
        tasks = self.tasks.to(device=device, dtype=dtype)
        seed = architecture_seed(s.seed, arch)
        networks: dict[str, torch.nn.Module] = {}
        scores, seconds = [], []
        for column in s.columns:
            norm = s.norm_for(column)
            if norm not in networks:
                net = build_architecture(s.space, arch, norm=norm, channels=s.channels, cells=s.cells,
                                         num_classes=s.num_classes, in_channels=s.image_channels, seed=seed)
                networks[norm] = net.to(device=device, dtype=dtype).train()
            t0 = time.perf_counter()
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    value = compute_proxy(column, networks[norm], tasks, seed=s.seed, **s.options_for(column))
            except Exception as exc:  # name the proxy and the architecture; a ValueError stays one (bad input)
                kind = ValueError if isinstance(exc, ValueError) else RuntimeError
                raise kind(f"proxy {column!r} failed on {arch}: {type(exc).__name__}: {exc}") from exc
            for w in caught:  # name the architecture in what the proxy warned about
                warnings.warn(f"{column} on {arch}: {w.message}", w.category, stacklevel=2)
            scores.append(float(value))
            seconds.append(time.perf_counter() - t0)
        return ScoreRow(arch, tuple(scores), tuple(seconds), time.perf_counter() - start)


def score_architectures(
    settings: ScoreSettings,
    archs: Sequence,
    out: str | Path,
    *,
    executor: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    chunk_size: int = 16,
    commit_seconds: float = 60.0,
    progress: bool = True,
    replace: bool = False,
) -> RunSummary:
    """Score ``archs`` with ``settings`` into the score file ``out``, skipping those already
    in it (resume), or starting it afresh when ``replace`` (only a score file is replaced).
    Rows are committed every ``chunk_size`` architectures or ``commit_seconds``, whichever
    comes first, and when the run stops for any reason. A file this call created is
    removed again when the run fails before it committed a row, so that it never blocks
    the corrected command. ``executor``, ``workers`` and ``ray_address`` (a running Ray
    cluster) choose where the rows are computed: see :func:`~metantk_plugin.scoring.executors.make_executor`."""
    check_positive_int("chunk_size", chunk_size)
    start = time.perf_counter()
    wanted: list[str] = []
    for arch in archs:
        text = canonical_architecture(settings.space, arch)
        if text not in wanted:
            wanted.append(text)
    pool = make_executor(executor, workers, ray_address=ray_address)  # validates before the file is touched
    tasks = sample_tasks(settings)  # unreadable data fails before the file is touched
    derived = [p for p in settings.proxies if resolve_proxy(p).kind == POPULATION]
    with open_run(out, replace=replace, settings=settings.to_dict(), columns=settings.columns,
                  higher_is_better=[settings.higher_is_better(c) for c in settings.columns],
                  derived=derived) as store, pool:
        todo = [a for a in wanted if not store.is_finished(a)]
        done_before = len(wanted) - len(todo)
        if todo:
            commit_stream(store, pool.map(ArchitectureScorer(settings, tasks), todo), total=len(wanted),
                          done=done_before, chunk_size=chunk_size, commit_seconds=commit_seconds, progress=progress,
                          description="scoring")
    return RunSummary(Path(out), len(wanted), done_before, len(todo), time.perf_counter() - start)
