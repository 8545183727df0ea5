"""Trained accuracies of NAS-Bench-201 cells, from whichever result file the user has.

``GroundTruth.from_csv()`` reads the shared table: the path given, else the file named by
the environment variable ``METANTK_NB201_CSV``, else
``shared/data/nasbench201/nb201_accuracies.csv.gz`` beside the working directory or a
parent. ``from_nas_bench_201`` (official ``.pth``), ``from_nats_bench`` (NATS-Bench
topology file or fast-mode folder) and ``from_nni_database`` (NNI's SQLite file) read the
other formats; :meth:`GroundTruth.open` picks one from the path, and :func:`find_ground_truth`
also answers None when no table is found and none was asked for. See :mod:`.accuracy_metrics`
for what each split means.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from metantk_plugin.spaces.nasbench201.accuracy_metrics import DATASETS, Metric, metric
from metantk_plugin.spaces.nasbench201.codec import NUM_ARCHITECTURES, all_architectures, parse_arch
from metantk_plugin.spaces.nasbench201.result_files import (
    CsvTable,
    NasBench201File,
    NatsBenchArchive,
    NniDatabase,
)
from metantk_plugin.spaces.nasbench201.table_location import CSV_ENV_VAR, default_csv_path

__all__ = ["CSV_ENV_VAR", "GroundTruth", "default_csv_path", "find_ground_truth"]

class GroundTruth:
    """Seed-mean accuracies (percent) of NAS-Bench-201 cells from one result source."""

    def __init__(self, source):
        self._source = source

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_csv(cls, path: str | Path | None = None) -> GroundTruth:
        """The table ``nb201_accuracies.csv.gz`` (or a CSV in its layout); see :func:`default_csv_path`."""
        if path is None:
            path = default_csv_path()
            if not path.is_file():
                raise FileNotFoundError(
                    f"no NAS-Bench-201 accuracy table at {path}; pass its path, or set {CSV_ENV_VAR} to "
                    "the path of nb201_accuracies.csv.gz"
                )
        return cls(CsvTable(path))

    @classmethod
    def from_nas_bench_201(cls, path: str | Path) -> GroundTruth:
        """An official ``NAS-Bench-201-v1_0-e61699.pth`` / ``v1_1-096897.pth`` (needs ``nas-bench-201``)."""
        return cls(NasBench201File(path))

    @classmethod
    def from_nats_bench(cls, path: str | Path) -> GroundTruth:
        """NATS-Bench ``NATS-tss-v1_0-3ffb9.pickle.pbz2`` or its ``-simple`` folder (needs ``nats_bench``)."""
        return cls(NatsBenchArchive(path))

    @classmethod
    def from_nni_database(cls, path: str | Path) -> GroundTruth:
        """NNI's NAS-Bench-201 SQLite database (``nasbench201-b2b60732.db``)."""
        return cls(NniDatabase(path))

    @classmethod
    def open(cls, path: str | Path | None = None) -> GroundTruth:
        """Pick the reader from the path: ``.csv``/``.csv.gz`` (or None) -> CSV, ``.pth`` ->
        NAS-Bench-201, ``.db``/``.sqlite`` -> NNI, ``.pbz2`` or a folder -> NATS-Bench."""
        if path is None:
            return cls.from_csv()
        path = Path(path)
        name = path.name.lower()
        if path.is_dir() or name.endswith(".pbz2"):
            return cls.from_nats_bench(path)
        if name.endswith((".csv", ".csv.gz")):
            return cls.from_csv(path)
        if name.endswith(".pth"):
            return cls.from_nas_bench_201(path)
        if name.endswith((".db", ".sqlite", ".sqlite3")):
            return cls.from_nni_database(path)
        raise ValueError(
            f"cannot tell the format of {path}; expected a .csv/.csv.gz table, a NAS-Bench-201 .pth, "
            "an NNI .db, or a NATS-Bench .pickle.pbz2 file or folder"
        )

    # ------------------------------------------------------------------ queries
    @property
    def metrics(self) -> tuple[Metric, ...]:
        """The accuracies this source can hold."""
        return tuple(self._source.metrics)

    @property
    def description(self) -> str:
        return self._source.description

    def accuracy(self, arch, dataset: str = "cifar10", split: str = "test", epochs: int = 200) -> float:
        """Accuracy (percent) of one cell; ``arch`` is a string, index, NNI dict, NASLib tuple or ``NB201Arch``."""
        index = parse_arch(arch).index
        wanted = self._metric(dataset, split, epochs)
        value = float(self._source.values(wanted, np.array([index]))[0])
        if np.isnan(value):
            raise ValueError(f"{self.description} has no {wanted} for architecture {index}")
        return value

    def standing(self, arch, datasets=DATASETS, split: str = "test", epochs: int = 200) -> dict[str, dict[str, float]]:
        """Per dataset, the accuracy ``a`` of one cell and where it stands in the space:
        ``{dataset: {accuracy, space_mean, space_best, percentile}}`` with mean and best over
        the cells the source holds and percentile ``100 · #{c : a_c < a} / 15,625`` (a cell the
        source lacks is not below). ValueError when the source lacks the cell or the metric."""
        report = {}
        for dataset in datasets:
            column = self.accuracies(dataset=dataset, split=split, epochs=epochs)
            accuracy = self.accuracy(arch, dataset, split, epochs)
            report[dataset] = {"accuracy": accuracy, "space_mean": float(column.mean()),
                               "space_best": float(column.max()), "percentile": float((column < accuracy).mean() * 100)}
        return report

    def accuracies(
        self, archs=None, dataset: str = "cifar10", split: str = "test", epochs: int = 200
    ) -> pd.Series:
        """Accuracies of many cells (all 15,625 if ``archs`` is None), indexed by official
        index and named after the metric; NaN where the source lacks a cell."""
        indices = self._indices(archs)
        wanted = self._metric(dataset, split, epochs)
        return pd.Series(
            self._source.values(wanted, indices), index=pd.Index(indices, name="index"), name=wanted.name
        )

    def table(self, archs=None) -> pd.DataFrame:
        """One row per cell (index = official index): ``arch`` and a column per available metric."""
        indices = self._indices(archs)
        strings = all_architectures()
        columns = {"arch": [strings[i].to_string() for i in indices]}
        for m in self.metrics:
            columns[m.name] = self._source.values(m, indices)
        return pd.DataFrame(columns, index=pd.Index(indices, name="index"))

    def __repr__(self) -> str:
        return f"GroundTruth({self.description})"

    def _metric(self, dataset, split, epochs) -> Metric:
        wanted = metric(dataset, split, epochs)
        if wanted not in self._source.metrics:
            have = ", ".join(m.name for m in self._source.metrics) or "nothing"
            raise ValueError(f"{self.description} has no {wanted}; it has: {have}")
        return wanted

    @staticmethod
    def _indices(archs) -> np.ndarray:
        if archs is None:
            return np.arange(NUM_ARCHITECTURES)
        if isinstance(archs, (str, dict)):
            raise ValueError("archs must be a sequence of architectures (or None for all); wrap a single one in a list")
        return np.array([parse_arch(arch).index for arch in archs], dtype=np.int64)


def find_ground_truth(path: str | Path | None = None) -> GroundTruth | None:
    """:meth:`GroundTruth.open` of ``path``; without a path, the default table, or None when
    there is none (a missing ``path`` given raises FileNotFoundError)."""
    try:
        return GroundTruth.open(path)
    except FileNotFoundError:
        if path is not None:
            raise
        return None
