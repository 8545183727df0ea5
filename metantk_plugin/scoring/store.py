"""The score store: one HDF5 file per scoring run, safe to kill and resume.

Layout (h5py)::

    /                 attrs: format, format_version, settings (JSON), columns, higher_is_better,
                             derived, package_version, created, rows, and readable copies of
                             the main settings (space, data, proxies, seed, network)
    /arch             [n]     official architecture strings (UTF-8)
    /scores           [n, P]  float64 raw score of column p (NaN/inf kept as computed)
    /seconds          [n, P]  float64 wall seconds of each proxy
    /total_seconds    [n]     float64 wall seconds of the whole architecture (network building included)

Crash safety. A chunk of rows is committed by copying the file to a hidden
``.NAME.partial`` beside it, appending the rows there, flushing and ``fsync``-ing it, and
renaming it over the file (``os.replace``, atomic on POSIX). The file on disk is
therefore always a complete, readable commit: a ``kill -9`` at any moment loses at
most the rows not yet committed, and a stale ``.partial`` is discarded on the next
open. An exclusive lock on ``.NAME.lock`` keeps two runs from writing one file.

A file is refused, never modified, when it is not HDF5 or cannot be read (corrupt),
lacks this store's ``format`` attribute (foreign), or was created with other settings.
Its datasets carry HDF5's fletcher32 checksums and its rows a SHA-256 ``digest``
attribute, so a changed byte is refused with a clear message instead of read.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from metantk_plugin.atomic_files import write_file_atomically
from metantk_plugin.interrupts import deferred_interrupt
from metantk_plugin.proxies.registry import population_proxy

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a second writer is the user's responsibility
    fcntl = None

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "RunSummary",
    "ScoreFileError",
    "ScoreRow",
    "ScoreStore",
    "commit_stream",
    "open_run",
    "export_csv",
    "read_scores",
    "read_settings",
    "score_directions",
]

FORMAT = "metantk-plugin score store"
FORMAT_VERSION = 1
_STRING = h5py.string_dtype("utf-8")
_CHUNK_ROWS = 256
_CHANGED = ("{path} was changed or damaged on disk: {what}. It was left untouched; score into another file "
            "or replace it ('metantk score --force')")


@dataclass(frozen=True)
class RunSummary:
    """What one run over a file did: ``requested`` architectures, ``already_done`` before
    it, ``scored`` rows added by it (scored by proxies, or trained and tested), in ``seconds``."""

    path: Path
    requested: int
    already_done: int
    scored: int
    seconds: float


class ScoreFileError(ValueError):
    """A score file that cannot be used: corrupt, foreign, locked, or of other settings."""


@dataclass(frozen=True)
class ScoreRow:
    """One architecture's result: raw ``scores`` and ``seconds`` per column, ``total_seconds``."""

    arch: str
    scores: tuple[float, ...]
    seconds: tuple[float, ...]
    total_seconds: float


@dataclass(frozen=True)
class _Header:
    settings: dict
    columns: tuple[str, ...]
    higher_is_better: tuple[bool, ...]
    derived: tuple[str, ...]


class ScoreStore:
    """A score file opened for appending; use :meth:`open` (a context manager)."""

    def __init__(self, path: Path, header: _Header, archs: list[str], lock_handle):
        self.path = path
        self.header = header
        self._archs = archs
        self._finished = set(archs)
        self._lock_handle = lock_handle

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        settings: Mapping,
        columns: Sequence[str],
        higher_is_better: Sequence[bool],
        derived: Sequence[str] = (),
    ) -> ScoreStore:
        """Create ``path`` for a run with ``settings`` (a JSON-able dict), or resume it when it
        exists with equal settings. Raises :class:`ScoreFileError` otherwise."""
        path = Path(path)
        settings = json.loads(json.dumps(dict(settings), sort_keys=True))
        header = _Header(settings, tuple(columns), tuple(bool(h) for h in higher_is_better), tuple(derived))
        if len(header.columns) != len(header.higher_is_better) or not header.columns:
            raise ValueError("columns and higher_is_better must be non-empty and of equal length")
        _check_derived(header)
        if path.is_dir():
            raise ScoreFileError(f"{path} is a directory; give a file name such as scores.h5")
        if not path.parent.is_dir():
            raise ScoreFileError(f"the folder of {path} does not exist")
        lock_handle = _lock(path)
        try:
            partial = _partial_path(path)
            if partial.exists():
                partial.unlink()  # an interrupted commit; the file itself is the last complete one
            if path.exists():
                stored = _read_header(path)
                if stored.settings != header.settings:
                    diff = "; ".join(_differences(stored.settings, header.settings))
                    raise ScoreFileError(
                        f"{path} holds scores of a run with other settings, so it cannot be resumed ({diff}); "
                        "use the settings stored in the file to resume it, or another output file"
                    )
                header = stored
                with h5py.File(path, "r") as f:
                    archs = list(f["arch"].asstr()[:])
            else:
                _create(path, header)
                archs = []
        except BaseException:
            _unlock(lock_handle)
            raise
        return cls(path, header, archs, lock_handle)

    # ------------------------------------------------------------------ state
    @property
    def columns(self) -> tuple[str, ...]:
        return self.header.columns

    @property
    def n_rows(self) -> int:
        return len(self._archs)

    def is_finished(self, arch: str) -> bool:
        return arch in self._finished

    # ------------------------------------------------------------------ writing
    def append(self, rows: Iterable[ScoreRow]) -> None:
        """Commit ``rows`` (see the module docstring); they are durable when this returns."""
        rows = list(rows)
        if not rows:
            return
        if self._lock_handle is None:
            raise ScoreFileError(f"{self.path} is closed")
        width = len(self.columns)
        for row in rows:
            if len(row.scores) != width or len(row.seconds) != width:
                raise ValueError(f"row of {row.arch!r} has {len(row.scores)} scores, expected {width}")
            if row.arch in self._finished:
                raise ValueError(f"{row.arch!r} is already in {self.path}")
        partial = _partial_path(self.path)
        shutil.copyfile(self.path, partial)
        with h5py.File(partial, "r+") as f:
            start = f["arch"].shape[0]
            end = start + len(rows)
            for name in ("arch", "scores", "seconds", "total_seconds"):
                f[name].resize(end, axis=0)
            f["arch"][start:end] = [r.arch for r in rows]
            f["scores"][start:end] = np.array([r.scores for r in rows], dtype=np.float64)
            f["seconds"][start:end] = np.array([r.seconds for r in rows], dtype=np.float64)
            f["total_seconds"][start:end] = np.array([r.total_seconds for r in rows], dtype=np.float64)
            f.attrs["rows"] = end
            f.attrs["digest"] = _digest(f)
            f.flush()
        _fsync(partial)
        os.replace(partial, self.path)
        _fsync_folder(self.path.parent)
        for r in rows:
            self._archs.append(r.arch)
            self._finished.add(r.arch)

    def close(self) -> None:
        """Release the write lock (idempotent)."""
        if self._lock_handle is not None:
            _unlock(self._lock_handle)
            self._lock_handle = None

    def __enter__(self) -> ScoreStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def open_run(path: str | Path, *, replace: bool = False, **header) -> Iterator[ScoreStore]:
    """:meth:`ScoreStore.open` for one run (``header``: its keyword arguments). With
    ``replace`` an existing file is first removed (only a file of this format: anything else
    is refused, untouched). A file this run created is removed again when the run fails
    before committing a row, so an empty, settings-stamped file never blocks the corrected
    command; a file with rows is always kept."""
    path = Path(path)
    if replace and path.exists():
        read_settings(path)
        path.unlink()
    created = not path.exists()
    store = ScoreStore.open(path, **header)
    try:
        with store:
            yield store
    except BaseException:
        if created and store.n_rows == 0:
            path.unlink(missing_ok=True)
        raise


def commit_stream(store: ScoreStore, rows: Iterable[ScoreRow], *, total: int, done: int, chunk_size: int,
                  commit_seconds: float, progress: bool, description: str) -> None:
    """Append ``rows`` as they come, committing every ``chunk_size`` rows or ``commit_seconds``,
    and whatever is buffered when the stream ends or fails (Ctrl-C included), with a
    progress bar of ``total`` architectures of which ``done`` were finished before."""
    buffer: list[ScoreRow] = []
    last_commit = time.monotonic()
    bar = tqdm(total=total, initial=done, unit="arch", desc=description, disable=not progress, dynamic_ncols=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("once")
            for row in rows:
                buffer.append(row)
                bar.update(1)
                if len(buffer) >= chunk_size or time.monotonic() - last_commit >= commit_seconds:
                    _commit(store, buffer)
                    buffer = []
                    last_commit = time.monotonic()
    finally:
        _commit(store, [row for row in buffer if not store.is_finished(row.arch)])
        bar.close()


def _commit(store: ScoreStore, rows: list[ScoreRow]) -> None:
    """``store.append(rows)`` that Ctrl-C cannot cut in two: a Ctrl-C during the commit
    is raised once the rows are committed (and the store knows it)."""
    with deferred_interrupt() as interrupt:
        store.append(rows)
    if interrupt.requested:
        raise KeyboardInterrupt


# ---------------------------------------------------------------------- reading
def read_settings(path: str | Path) -> dict:
    """The settings a score file was created with (refuses foreign or corrupt files)."""
    return _read_header(Path(path)).settings


def read_scores(path: str | Path, *, times: bool = False) -> pd.DataFrame:
    """The scores of a score file: an ``arch`` column (official strings), then one column
    of raw values per proxy (requested population proxies such as ``te_nas`` computed over
    the file's architectures, then every per-network column). ``times=True`` adds
    ``seconds_<proxy>`` columns and ``seconds_total``."""
    path = Path(path)
    header = _read_header(path)
    with h5py.File(path, "r") as f:
        archs = list(f["arch"].asstr()[:])
        scores = f["scores"][:]
        seconds = f["seconds"][:]
        total = f["total_seconds"][:]
    data: dict[str, object] = {"arch": archs}
    columns = {name: scores[:, i] for i, name in enumerate(header.columns)}
    for name in header.derived:
        data[name] = population_proxy(name).combine(columns) if archs else np.zeros(0)
    data.update(columns)
    if times:
        for i, name in enumerate(header.columns):
            data[f"seconds_{name}"] = seconds[:, i]
        data["seconds_total"] = total
    return pd.DataFrame(data)


def score_directions(path: str | Path) -> dict[str, bool]:
    """``{column: higher_is_better}`` for every score column of :func:`read_scores`."""
    header = _read_header(Path(path))
    directions = {name: population_proxy(name).higher_is_better for name in header.derived}
    directions.update(zip(header.columns, header.higher_is_better))
    return directions


def export_csv(path: str | Path, csv_path: str | Path, *, overwrite: bool = False, times: bool = False) -> Path:
    """Write :func:`read_scores` of ``path`` to ``csv_path`` (refuses to replace an existing
    file unless ``overwrite``). Floats are written with 17 significant digits (exact)."""
    csv_path = Path(csv_path)
    if csv_path.exists() and not overwrite:
        raise FileExistsError(f"{csv_path} exists; choose another name or allow overwriting")
    text = read_scores(path, times=times).to_csv(index=False, float_format="%.17g")
    return write_file_atomically(csv_path, text)


# ---------------------------------------------------------------------- internals
def _partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def _lock(path: Path):
    if fcntl is None:
        return True
    handle = open(path.with_name(f".{path.name}.lock"), "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ScoreFileError(f"another process is writing {path}; wait for it or choose another file") from None
    return handle


def _unlock(handle) -> None:
    if fcntl is None or handle is True:
        return
    lock_file = Path(handle.name)
    try:
        lock_file.unlink()
    except OSError:
        pass
    fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()


def _create(path: Path, header: _Header) -> None:
    partial = _partial_path(path)
    width = len(header.columns)
    settings = header.settings
    with h5py.File(partial, "w", libver="earliest") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["settings"] = json.dumps(settings, sort_keys=True)
        f.attrs["columns"] = np.array(header.columns, dtype=_STRING)
        f.attrs["higher_is_better"] = np.array(header.higher_is_better, dtype=np.int8)
        f.attrs["derived"] = np.array(header.derived, dtype=_STRING)
        f.attrs["package_version"] = str(settings.get("package_version", ""))
        f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        f.attrs["rows"] = 0
        for key in ("space", "data", "seed", "proxies"):
            if key in settings:
                f.attrs[key] = json.dumps(settings[key]) if isinstance(settings[key], list) else settings[key]
        f.create_dataset("arch", shape=(0,), maxshape=(None,), dtype=_STRING, chunks=(_CHUNK_ROWS,))
        for name in ("scores", "seconds"):
            f.create_dataset(name, shape=(0, width), maxshape=(None, width), dtype=np.float64,
                             chunks=(_CHUNK_ROWS, width), fletcher32=True)
        f.create_dataset("total_seconds", shape=(0,), maxshape=(None,), dtype=np.float64, chunks=(_CHUNK_ROWS,),
                         fletcher32=True)
        f.attrs["digest"] = _digest(f)
    _fsync(partial)
    os.replace(partial, path)
    _fsync_folder(path.parent)


def _read_header(path: Path) -> _Header:
    if not path.is_file():
        raise FileNotFoundError(f"no score file at {path}")
    if not h5py.is_hdf5(path):
        raise ScoreFileError(f"{path} is not an HDF5 file (corrupt, or not a score file); it was left untouched")
    try:
        with h5py.File(path, "r") as f:
            attrs = f.attrs
            if attrs.get("format") != FORMAT:
                raise ScoreFileError(
                    f"{path} is an HDF5 file but not a metantk score file (its 'format' attribute is "
                    f"{attrs.get('format')!r}, expected {FORMAT!r}); it was left untouched"
                )
            version = int(attrs["format_version"])
            if version > FORMAT_VERSION:
                raise ScoreFileError(
                    f"{path} has score-file format {version}; this version reads formats up to {FORMAT_VERSION}"
                )
            header = _Header(
                json.loads(attrs["settings"]),
                tuple(str(c) for c in _strings(attrs["columns"])),
                tuple(bool(h) for h in attrs["higher_is_better"]),
                tuple(str(c) for c in _strings(attrs["derived"])),
            )
            n = f["arch"].shape[0]
            rows = int(attrs["rows"])
            shapes = {name: f[name].shape for name in ("scores", "seconds", "total_seconds")}
            archs = f["arch"].asstr()[:]
            if "digest" in attrs and attrs["digest"] != _digest(f):
                raise ScoreFileError(_CHANGED.format(path=path, what="its content no longer matches its stored digest"))
    except ScoreFileError:
        raise
    except OSError as exc:
        if "filter" in str(exc).lower():  # how HDF5 reports a fletcher32 checksum failure
            raise ScoreFileError(_CHANGED.format(path=path, what=f"a data block fails its checksum ({exc})")) from None
        raise ScoreFileError(f"{path} cannot be read as a score file ({exc}); it was left untouched") from None
    except (KeyError, ValueError, TypeError) as exc:
        raise ScoreFileError(f"{path} cannot be read as a score file ({exc}); it was left untouched") from None
    width = len(header.columns)
    expected = {"scores": (n, width), "seconds": (n, width), "total_seconds": (n,)}
    if shapes != expected or len(header.higher_is_better) != width or rows != n:
        raise ScoreFileError(f"{path} is inconsistent (datasets {shapes}, {n} architectures); it was left untouched")
    if len(set(archs)) != n:
        raise ScoreFileError(f"{path} lists an architecture twice; it was left untouched")
    try:
        _check_derived(header)
    except ValueError as exc:
        raise ScoreFileError(f"{path}: {exc}") from None
    return header


def _digest(f: h5py.File) -> str:
    """SHA-256 of the rows (architecture strings and every number), stored in the ``digest``
    attribute; HDF5's fletcher32 checksums cover the numeric chunks, this covers the
    strings too, which HDF5 keeps outside the chunks."""
    digest = hashlib.sha256()
    digest.update("\n".join(f["arch"].asstr()[:]).encode())
    for name in ("scores", "seconds", "total_seconds"):
        digest.update(np.ascontiguousarray(f[name][:], dtype="<f8").tobytes())
    return digest.hexdigest()


def _check_derived(header: _Header) -> None:
    for name in header.derived:
        missing = [c for c in population_proxy(name).inputs if c not in header.columns]
        if missing:
            raise ValueError(f"population proxy {name!r} needs the columns {missing}")


def _strings(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(values)]


def _differences(stored: Mapping, wanted: Mapping, prefix: str = "") -> list[str]:
    """``'key: A in the file, B now'`` for each differing setting (nested keys dotted)."""
    lines = []
    for key in sorted(set(stored) | set(wanted)):
        a, b = stored.get(key, "<absent>"), wanted.get(key, "<absent>")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            lines += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            lines.append(f"{prefix}{key}: {a!r} in the file, {b!r} now")
    return lines


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
