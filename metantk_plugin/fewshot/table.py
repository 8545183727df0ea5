"""Few-shot ground truth for many architectures: each one trained and tested with one
protocol, one row per architecture in a crash-safe, resumable table.

A table is a score file (:mod:`metantk_plugin.scoring.store`: same layout, same atomic
commits, same refusal of other settings) whose settings say ``"table": "fewshot-accuracy"``
and whose columns are, for each number of shots ``s`` in the settings,

* ``acc_{W}way_{s}shot``: mean query accuracy over the test episodes (a fraction),
* ``ci95_{W}way_{s}shot``: the half width of its Student-t 95 % interval,

then ``episodes`` (test episodes per setting), ``train_seconds`` (wall seconds of training:
one pre-training for ``rfs``, one meta-training per number of shots otherwise) and
``parameters`` (of the trained network).

Protocols: ``rfs`` pre-trains once on the base classes and fits the logistic-regression
probe of every test episode on features computed once per image
(:func:`~metantk_plugin.fewshot.rfs.feature_bank_accuracy`), so several shot settings
share one training; ``maml``, ``fomaml`` and ``anil`` meta-train once per shot setting.
Every architecture starts from weights drawn from
:func:`~metantk_plugin.scoring.settings.architecture_seed` and sees the same batches and
the same test episodes, so rows are comparable, paired and independent of the executor.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from metantk_plugin import __version__
from metantk_plugin.data.sources import parse_data_spec
from metantk_plugin.fewshot.evaluation import EpisodeResult
from metantk_plugin.fewshot.pipeline import EvaluationSettings, build_protocol
from metantk_plugin.fewshot.protocols import TrainingProtocol
from metantk_plugin.fewshot.rfs import feature_bank_accuracy
from metantk_plugin.fewshot.training import TrainingHistory, seeded_global_rng
from metantk_plugin.scoring.architectures import ARCH_SPACES, build_architecture, canonical_architecture
from metantk_plugin.scoring.executors import make_executor
from metantk_plugin.scoring.settings import architecture_seed
from metantk_plugin.scoring.store import (
    RunSummary,
    ScoreFileError,
    ScoreRow,
    commit_stream,
    open_run,
    read_scores,
    read_settings,
)
from metantk_plugin.task_spec import check_positive_int

__all__ = ["TABLE_KIND", "ArchitectureTrainer", "FewShotTableSettings", "evaluate_architectures", "read_fewshot_table"]

TABLE_KIND = "fewshot-accuracy"
EACH_ARCHITECTURE = "each architecture of the table"
_DEFAULT_SIZE = {"nb201": (8, 1), "darts-fewshot": (8, 2)}


@dataclass(frozen=True)
class FewShotTableSettings:
    """What decides a table's values: the ``space``, the numbers of ``shots`` tested, and
    one :class:`EvaluationSettings` for everything else (its ``network`` is
    :data:`EACH_ARCHITECTURE`, its ``shots`` the first of ``shots``; its network size,
    ``channels`` = C and ``cells`` = N per stage for nb201 or the cell count 3k+2 for
    darts-fewshot, defaults to C=8 with 1 cell per stage (nb201) or 2 cells (darts-fewshot),
    small enough to train hundreds of networks on a CPU)."""

    space: str
    evaluation: EvaluationSettings
    shots: tuple[int, ...] = (1, 5)
    package_version: str = __version__

    def __post_init__(self) -> None:
        if self.space not in ARCH_SPACES:
            raise ValueError(f"unknown search space {self.space!r}; expected one of {', '.join(ARCH_SPACES)}")
        shots = tuple(self.shots)
        if not shots or len(set(shots)) != len(shots) or any(
                isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shots):
            raise ValueError(f"shots must be distinct positive ints, got {list(shots)!r}")
        channels, cells = _DEFAULT_SIZE[self.space]
        e = self.evaluation
        evaluation = replace(e, network=EACH_ARCHITECTURE, shots=shots[0],
                             channels=channels if e.channels is None else e.channels,
                             cells=cells if e.cells is None else e.cells).resolved()
        if self.space == "darts-fewshot" and (evaluation.cells - 2) % 3:
            raise ValueError(f"darts-fewshot networks have 3k+2 cells (2, 5, 8, ...), got cells={evaluation.cells}")
        if parse_data_spec(evaluation.data).kind == "synthetic":
            raise ValueError("a few-shot table needs real images (e.g. omniglot:PATH), not 'synthetic' data")
        object.__setattr__(self, "shots", shots)
        object.__setattr__(self, "evaluation", evaluation)

    @property
    def columns(self) -> tuple[str, ...]:
        per_shot = [(f"acc_{self.evaluation.ways}way_{s}shot", f"ci95_{self.evaluation.ways}way_{s}shot")
                    for s in self.shots]
        return (*[c for pair in per_shot for c in pair], "episodes", "train_seconds", "parameters")

    def to_dict(self) -> dict:
        return {"table": TABLE_KIND, "space": self.space, "shots": list(self.shots), "data": self.evaluation.data,
                "package_version": self.package_version, "evaluation": self.evaluation.to_dict()}


# data loaded once per process: a worker trains many architectures on the same data
@functools.lru_cache(maxsize=8)
def _sampler(settings: EvaluationSettings, split: str, rotations: bool = False):
    return settings.episode_sampler(split, rotations=rotations)


@functools.lru_cache(maxsize=2)
def _pretraining_batches(settings: EvaluationSettings):
    return settings.pretraining_batches()


@dataclass(frozen=True)
class ArchitectureTrainer:
    """``trainer(arch) -> ScoreRow``: train and test one architecture as ``settings`` say."""

    settings: FewShotTableSettings

    def __call__(self, arch: str) -> ScoreRow:
        with seeded_global_rng(architecture_seed(self.settings.evaluation.seed, arch)):  # the caller's RNG stays
            return self._train_and_test(arch)

    def _train_and_test(self, arch: str) -> ScoreRow:
        began = time.perf_counter()
        s, e = self.settings, self.settings.evaluation
        results: dict[int, EpisodeResult] = {}
        eval_seconds: dict[int, float] = {}
        if e.protocol == "rfs":
            protocol, train_seconds = self._trained(arch, e, _pretraining_batches(e))
            for shots in s.shots:
                t0 = time.perf_counter()
                test = _sampler(replace(e, shots=shots), "test")
                results[shots] = feature_bank_accuracy(protocol.network, test, episodes=e.episodes, seed=e.seed)
                eval_seconds[shots] = time.perf_counter() - t0
        else:
            train_seconds = 0.0
            for shots in s.shots:
                per_shot = replace(e, shots=shots)
                protocol, seconds = self._trained(arch, per_shot, _sampler(per_shot, "train", e.rotations))
                train_seconds += seconds
                t0 = time.perf_counter()
                results[shots] = protocol.evaluate(_sampler(per_shot, "test"), episodes=e.episodes, seed=e.seed,
                                                   batch_size=e.eval_batch, progress=False)
                eval_seconds[shots] = time.perf_counter() - t0
        scores: list[float] = []
        seconds: list[float] = []
        for shots in s.shots:
            scores += [results[shots].accuracy, results[shots].ci95]
            seconds += [eval_seconds[shots], 0.0]
        parameters = sum(p.numel() for p in protocol.network.parameters())
        scores += [float(e.episodes), train_seconds, float(parameters)]
        seconds += [0.0, train_seconds, 0.0]
        return ScoreRow(arch, tuple(scores), tuple(seconds), time.perf_counter() - began)

    def _trained(self, arch: str, settings: EvaluationSettings, train_data) -> tuple[TrainingProtocol, float]:
        """``arch`` trained with the protocol of ``settings`` on ``train_data``, and the wall seconds of training."""
        protocol = build_protocol(settings, functools.partial(self._network, arch), train_data=train_data)
        t0 = time.perf_counter()
        protocol.train(start=0, stop=settings.meta_iterations, history=TrainingHistory(), progress=False)
        return protocol, time.perf_counter() - t0

    def _network(self, arch: str, num_classes: int) -> torch.nn.Module:
        s, e = self.settings, self.settings.evaluation
        network = build_architecture(s.space, arch, norm="batch", channels=e.channels, cells=e.cells,
                                     num_classes=num_classes, in_channels=parse_data_spec(e.data).channels,
                                     seed=architecture_seed(e.seed, arch), image_size=e.image_size)
        return network.to(e.device)


def evaluate_architectures(
    settings: FewShotTableSettings,
    archs: Sequence,
    out: str | Path,
    *,
    executor: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    chunk_size: int = 1,
    commit_seconds: float = 60.0,
    progress: bool = True,
    replace: bool = False,
) -> RunSummary:
    """Train and test each of ``archs`` into the table ``out``, skipping those already in it
    (resume), or starting it afresh when ``replace`` (see :func:`~metantk_plugin.scoring.store.open_run`).
    Rows are committed every ``chunk_size`` architectures or ``commit_seconds``, and when the
    run stops for any reason, so a ``kill -9`` loses at most those in flight. ``executor``,
    ``workers`` and ``ray_address`` are those of :func:`~metantk_plugin.scoring.executors.make_executor`."""
    check_positive_int("chunk_size", chunk_size)
    start = time.perf_counter()
    wanted = list(dict.fromkeys(canonical_architecture(settings.space, a) for a in archs))
    pool = make_executor(executor, workers, ray_address=ray_address)  # validates before the file is touched
    columns = settings.columns
    with open_run(out, replace=replace, settings=settings.to_dict(), columns=columns,
                  higher_is_better=[c.startswith("acc_") for c in columns]) as store, pool:
        todo = [a for a in wanted if not store.is_finished(a)]
        done_before = len(wanted) - len(todo)
        if todo:
            commit_stream(store, pool.map(ArchitectureTrainer(settings), todo), total=len(wanted),
                          done=done_before, chunk_size=chunk_size, commit_seconds=commit_seconds,
                          progress=progress, description="training")
    return RunSummary(Path(out), len(wanted), done_before, len(todo), time.perf_counter() - start)


def read_fewshot_table(path: str | Path) -> tuple[pd.DataFrame, Mapping]:
    """The rows (``arch`` then the columns) and the settings of a few-shot table; a score
    file of proxies, a foreign or a corrupt file is refused with :class:`ScoreFileError`."""
    settings = read_settings(path)
    if settings.get("table") != TABLE_KIND:
        raise ScoreFileError(f"{path} is a score file of proxies, not a few-shot accuracy table "
                             "(write one with 'metantk evaluate --archs ... --out TABLE.h5')")
    return read_scores(path), settings
