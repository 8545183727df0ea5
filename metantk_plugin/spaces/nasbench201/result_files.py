"""Readers of the four NAS-Bench-201 result formats, behind one small interface.

Each source has ``description`` (what was read), ``metrics`` (the accuracies it can
hold) and ``values(metric, indices) -> float64 [len(indices)]`` (mean over seeds, in
percent, NaN where the source has no value for a cell).

* :class:`CsvTable`: the shared table ``nb201_accuracies.csv.gz`` or any CSV with its
  ``index`` column and some of its accuracy columns.
* :class:`NasBench201File`: an official ``NAS-Bench-201-v1_*.pth`` through the
  ``nas_201_api`` package (``pip install nas-bench-201``), imported only when used; the
  file is read with ``torch.load(weights_only=True)``.
* :class:`NatsBenchArchive`: a NATS-Bench topology file ``NATS-tss-v1_0-3ffb9.pickle.pbz2``
  or its fast-mode folder ``NATS-tss-v1_0-3ffb9-simple`` through ``nats_bench``
  (``pip install nats_bench``), imported only when used; its pickles are read with the
  restricted unpickler of :mod:`metantk_plugin.data.safe_pickle`.

Benchmark files are untrusted input: none of them can run code while it is read.
* :class:`NniDatabase`: NNI's converted NAS-Bench-201 SQLite file (``nasbench201-*.db``),
  read with the standard library's ``sqlite3`` in read-only mode.
"""

from __future__ import annotations

import bz2
import json
import pickle
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from metantk_plugin.data.safe_pickle import UnsafePickleError, safe_load
from metantk_plugin.spaces.nasbench201.accuracy_metrics import Metric, all_metrics
from metantk_plugin.spaces.nasbench201.codec import NUM_ARCHITECTURES, NB201Arch, all_architectures

__all__ = ["CSV_COLUMNS", "CsvTable", "NasBench201File", "NatsBenchArchive", "NniDatabase"]

CSV_COLUMNS = {
    Metric("cifar10", "test", 200): "cifar10_test",
    Metric("cifar10", "valid", 200): "cifar10_valid",
    Metric("cifar100", "test", 200): "cifar100_test",
    Metric("imagenet16-120", "test", 200): "imagenet16_test",
    Metric("cifar10", "valid", 12): "cifar10_valid_12ep",
    Metric("cifar10", "test", 12): "cifar10_test_12ep",
    Metric("cifar100", "valid", 12): "cifar100_valid_12ep",
    Metric("cifar100", "test", 12): "cifar100_test_12ep",
    Metric("imagenet16-120", "valid", 12): "imagenet16_valid_12ep",
    Metric("imagenet16-120", "test", 12): "imagenet16_test_12ep",
}
"""Metric -> column of the shared table (it has no 200-epoch cifar100/imagenet16 validation)."""

# NAS-Bench-201 run name and get_more_info key of each (dataset, split).
_API_RUNS = {
    ("cifar10", "test"): ("cifar10", "test-accuracy"),
    ("cifar10", "valid"): ("cifar10-valid", "valid-accuracy"),
    ("cifar100", "test"): ("cifar100", "test-accuracy"),
    ("cifar100", "valid"): ("cifar100", "valid-accuracy"),
    ("imagenet16-120", "test"): ("ImageNet16-120", "test-accuracy"),
    ("imagenet16-120", "valid"): ("ImageNet16-120", "valid-accuracy"),
}

# NNI database: config dataset and stats column of each (dataset, split) (NNI's db_gen mapping).
_NNI_RUNS = {
    ("cifar10", "test"): ("cifar10", "test_acc"),
    ("cifar10", "valid"): ("cifar10-valid", "valid_acc"),
    ("cifar100", "test"): ("cifar100", "test_acc"),
    ("cifar100", "valid"): ("cifar100", "valid_acc"),
    ("imagenet16-120", "test"): ("imagenet16-120", "test_acc"),
    ("imagenet16-120", "valid"): ("imagenet16-120", "valid_acc"),
}
_NNI_TABLES = {
    "nb201trialconfig": {"id", "arch", "num_epochs", "dataset"},
    "nb201trialstats": {"config_id", "valid_acc", "test_acc"},
}


class CsvTable:
    """Accuracy columns of a CSV keyed by the official ``index`` (``arch`` is checked if present)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"NAS-Bench-201 accuracy table {self.path} does not exist")
        try:
            frame = pd.read_csv(self.path)
        except (OSError, ValueError, pd.errors.ParserError) as error:
            raise ValueError(f"cannot read {self.path} as a CSV table: {error}") from error
        if "index" not in frame.columns:
            raise ValueError(
                f"{self.path} has no 'index' column; expected the layout of nb201_accuracies.csv.gz "
                f"(index, arch, {', '.join(CSV_COLUMNS.values())})"
            )
        indices = frame["index"].to_numpy()
        if not len(indices):
            raise ValueError(f"{self.path} has no rows")
        if not np.issubdtype(indices.dtype, np.integer) or indices.min() < 0 or indices.max() >= NUM_ARCHITECTURES:
            raise ValueError(f"{self.path}: 'index' must hold integers in 0..{NUM_ARCHITECTURES - 1}")
        if len(np.unique(indices)) != len(indices):
            raise ValueError(f"{self.path}: 'index' has repeated values")
        if "arch" in frame.columns:
            archs = all_architectures()
            for index, text in zip(indices, frame["arch"]):
                if archs[index].to_string() != text:
                    raise ValueError(
                        f"{self.path}: row with index {index} has arch {text!r}, but the official index "
                        f"{index} is {archs[index].to_string()!r}"
                    )
        self.metrics = tuple(m for m in all_metrics() if CSV_COLUMNS.get(m) in frame.columns)
        self.description = f"CSV table {self.path}"
        self._columns = {}
        for m in self.metrics:
            column = np.full(NUM_ARCHITECTURES, np.nan)
            column[indices] = pd.to_numeric(frame[CSV_COLUMNS[m]], errors="coerce").to_numpy(dtype=float)
            self._columns[m] = column

    def values(self, metric: Metric, indices: np.ndarray) -> np.ndarray:
        return self._columns[metric][indices]


class NasBench201File:
    """An official NAS-Bench-201 ``.pth`` read by ``nas_201_api.NASBench201API``."""

    metrics = all_metrics()

    def __init__(self, path: str | Path):
        try:
            from nas_201_api import NASBench201API
        except ImportError as error:
            raise ImportError(
                "reading a NAS-Bench-201 .pth file needs the package nas-bench-201 "
                "(pip install nas-bench-201), which provides nas_201_api"
            ) from error
        self.path = _existing(path, "NAS-Bench-201 .pth file")
        try:  # loaded here, weights-only, so that no setting or environment variable can make it run code
            content = torch.load(self.path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            unsupported = [line.strip() for line in str(error).splitlines() if "Unsupported global" in line]
            raise ValueError(
                f"refusing to load {self.path}: it holds objects other than tensors and plain containers, which "
                f"could run code while loading ({'; '.join(unsupported[:1]) or 'torch.load with weights_only=True'})"
            ) from None
        except (OSError, EOFError, RuntimeError) as error:
            raise ValueError(f"{self.path} is not a NAS-Bench-201 benchmark file: {error}") from None
        if not isinstance(content, dict):
            raise ValueError(f"{self.path} is not a NAS-Bench-201 benchmark file: it holds a {type(content).__name__}")
        try:
            self._api = NASBench201API(content, verbose=False)
        except (AssertionError, KeyError, TypeError, RuntimeError) as error:
            raise ValueError(f"{self.path} is not a NAS-Bench-201 benchmark file: {error}") from error
        _check_meta_archs(self._api.meta_archs, self.path)
        self.description = f"NAS-Bench-201 file {self.path} (nas_201_api)"

    def values(self, metric: Metric, indices: np.ndarray) -> np.ndarray:
        return _api_values(self._api, metric, indices)


class NatsBenchArchive:
    """A NATS-Bench topology benchmark (file, or fast-mode folder) read by ``nats_bench``."""

    metrics = all_metrics()

    def __init__(self, path: str | Path):
        try:
            import nats_bench
        except ImportError as error:
            raise ImportError(
                "reading a NATS-Bench file needs the package nats_bench (pip install nats_bench)"
            ) from error
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(
                f"NATS-Bench topology benchmark {self.path} does not exist; expected the file "
                "NATS-tss-v1_0-3ffb9.pickle.pbz2 or the folder NATS-tss-v1_0-3ffb9-simple"
            )
        fast_mode = self.path.is_dir()
        try:
            with _restricted_nats_unpickling():
                self._api = nats_bench.create(str(self.path), "tss", fast_mode=fast_mode, verbose=False)
        except UnsafePickleError:
            raise
        except (OSError, EOFError, KeyError, ValueError, TypeError, pickle.UnpicklingError) as error:
            raise ValueError(f"{self.path} is not a NATS-Bench topology benchmark: {error}") from error
        _check_meta_archs(self._api.meta_archs, self.path)
        self.description = f"NATS-Bench topology {'folder' if fast_mode else 'file'} {self.path} (nats_bench)"

    def values(self, metric: Metric, indices: np.ndarray) -> np.ndarray:
        with _restricted_nats_unpickling():  # fast mode reads each architecture's file when first asked
            return _api_values(self._api, metric, indices)


def _safe_pbz2_load(file_path, ext: str = ".pbz2"):
    """``nats_bench.pickle_load`` (a bz2-compressed pickle, ``ext`` added when the path is
    not a file) through the restricted unpickler."""
    path = Path(file_path)
    if not path.is_file():
        path = Path(f"{file_path}{ext}")
    with bz2.open(path, "rb") as handle:
        return safe_load(handle, source=str(path))


@contextmanager
def _restricted_nats_unpickling() -> Iterator[None]:
    """Make ``nats_bench`` read its pickles with :func:`_safe_pbz2_load` (it calls its own
    ``pickle_load``, a plain ``pickle.load``, from these two modules)."""
    from nats_bench import api_topology, api_utils

    saved = api_utils.pickle_load, api_topology.pickle_load
    api_utils.pickle_load = api_topology.pickle_load = _safe_pbz2_load
    try:
        yield
    finally:
        api_utils.pickle_load, api_topology.pickle_load = saved


class NniDatabase:
    """NNI's NAS-Bench-201 SQLite database (tables ``nb201trialconfig``, ``nb201trialstats``)."""

    def __init__(self, path: str | Path):
        self.path = _existing(path, "NNI NAS-Bench-201 database")
        with self._connect() as connection:
            for table, needed in _NNI_TABLES.items():
                present = {row[1] for row in connection.execute(f'PRAGMA table_info("{table}")')}
                if not present:
                    raise ValueError(f"{self.path} is not an NNI NAS-Bench-201 database: it has no table {table}")
                if needed - present:
                    raise ValueError(
                        f"{self.path}: table {table} lacks the column(s) {', '.join(sorted(needed - present))}"
                    )
            runs = set(connection.execute("SELECT DISTINCT dataset, num_epochs FROM nb201trialconfig"))
        self.metrics = tuple(m for m in all_metrics() if (_NNI_RUNS[(m.dataset, m.split)][0], m.epochs) in runs)
        self.description = f"NNI NAS-Bench-201 database {self.path}"
        self._columns: dict[Metric, np.ndarray] = {}

    def values(self, metric: Metric, indices: np.ndarray) -> np.ndarray:
        if metric not in self._columns:
            self._columns[metric] = self._read_column(metric)
        return self._columns[metric][indices]

    def _read_column(self, metric: Metric) -> np.ndarray:
        dataset, column = _NNI_RUNS[(metric.dataset, metric.split)]
        query = (
            f"SELECT c.arch, s.{column} FROM nb201trialstats AS s "
            "JOIN nb201trialconfig AS c ON s.config_id = c.id WHERE c.dataset = ? AND c.num_epochs = ?"
        )
        sums = np.zeros(NUM_ARCHITECTURES)
        counts = np.zeros(NUM_ARCHITECTURES)
        with self._connect() as connection:
            for arch_json, value in connection.execute(query, (dataset, metric.epochs)):
                if value is None:
                    continue
                try:
                    index = NB201Arch.from_nni(json.loads(arch_json), label=None).index
                except (TypeError, ValueError) as error:
                    raise ValueError(
                        f"{self.path}: unreadable arch {arch_json!r} in nb201trialconfig: {error}"
                    ) from error
                sums[index] += value
                counts[index] += 1
        with np.errstate(invalid="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    def _connect(self) -> closing[sqlite3.Connection]:
        """A read-only connection, closed when its ``with`` block ends."""
        try:
            connection = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as error:
            raise ValueError(f"cannot open {self.path} as an SQLite database: {error}") from error
        try:
            connection.execute("SELECT name FROM sqlite_master LIMIT 1")
        except sqlite3.Error as error:
            connection.close()
            raise ValueError(f"{self.path} is not an SQLite database: {error}") from error
        return closing(connection)


def _api_values(api, metric: Metric, indices: np.ndarray) -> np.ndarray:
    """Seed-mean accuracies from a NAS-Bench-201 / NATS-Bench API object (NaN where absent)."""
    run, key = _API_RUNS[(metric.dataset, metric.split)]
    out = np.full(len(indices), np.nan)
    for position, index in enumerate(indices):
        try:
            info = api.get_more_info(int(index), run, hp=str(metric.epochs), is_random=False)
        except UnsafePickleError:
            raise
        except (KeyError, ValueError, AssertionError):  # how both APIs report a missing run or file
            continue
        value = info.get(key)
        if value is not None:
            out[position] = float(value)
    return out


def _check_meta_archs(meta_archs, path: Path) -> None:
    """The file must list the 15,625 cells in official index order."""
    archs = all_architectures()
    if len(meta_archs) != NUM_ARCHITECTURES:
        raise ValueError(f"{path} lists {len(meta_archs)} architectures; expected {NUM_ARCHITECTURES}")
    for index, text in enumerate(meta_archs):
        if text != archs[index].to_string():
            raise ValueError(
                f"{path}: architecture {index} is {text!r}, but the official index {index} is "
                f"{archs[index].to_string()!r}"
            )


def _existing(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    return path
