"""A restricted unpickler for dataset files, which are untrusted input.

A pickle can name any importable callable and call it while loading (``os.system``
included). This unpickler resolves only the handful of globals that numpy arrays,
numpy scalars and plain Python containers need, and refuses everything else with
:class:`UnsafePickleError` before anything is called.
"""

from __future__ import annotations

import codecs
import collections
import io
import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = ["UnsafePickleError", "safe_load", "safe_loads"]


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """The pickle asks for a global that is not on the allow-list (a ValueError too, like
    every other bad-input error of the package)."""


def _numpy_core(submodule: str) -> Any:
    """``numpy._core.<submodule>`` on numpy 2, ``numpy.core.<submodule>`` on numpy 1."""
    core = getattr(np, "_core", None)
    if core is None or not hasattr(core, submodule):
        core = np.core
    return getattr(core, submodule)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    multiarray = _numpy_core("multiarray")
    numeric = _numpy_core("numeric")
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # bytes in protocol-2 pickles from Python 3
        ("collections", "OrderedDict"): collections.OrderedDict,
    }
    for core in ("numpy.core", "numpy._core"):  # pickles written by numpy 1 and numpy 2
        allowed[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer
    for builtins_name in ("builtins", "__builtin__"):  # Python 3 and Python 2 names
        for name, value in (("set", set), ("frozenset", frozenset), ("complex", complex),
                            ("bytearray", bytearray), ("slice", slice)):
            allowed[(builtins_name, name)] = value
    return allowed


_ALLOWED = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, *, source: str, encoding: str):
        super().__init__(file, encoding=encoding)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load {self._source}: the pickle asks for the global '{module}.{name}', "
                "which could run arbitrary code while loading. Dataset pickles may hold only numpy "
                "arrays, numpy scalars and builtin containers (dict, list, tuple, set, str, bytes, "
                "numbers). If you made this file yourself and trust it, re-save its arrays with "
                "numpy.savez and load that instead."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing to load {self._source}: it uses persistent ids ({pid!r})")


def safe_load(file: str | os.PathLike | BinaryIO, *, encoding: str = "latin1", source: str | None = None) -> Any:
    """Unpickle ``file`` (a path or a binary file object) allowing only numpy arrays,
    numpy scalars and builtin containers. ``encoding='latin1'`` reads Python-2 pickles
    (the RFS miniImageNet files) with their byte strings as ``str`` and their arrays intact;
    ``source`` names a file object in messages (default: its ``name``).

    Raises :class:`UnsafePickleError` for anything else."""
    if isinstance(file, (str, os.PathLike)):
        path = Path(file)
        with path.open("rb") as handle:
            return _RestrictedUnpickler(handle, source=source or str(path), encoding=encoding).load()
    source = source or getattr(file, "name", "<pickle stream>")
    return _RestrictedUnpickler(file, source=str(source), encoding=encoding).load()


def safe_loads(data: bytes, *, encoding: str = "latin1") -> Any:
    """:func:`safe_load` for pickle bytes in memory."""
    return _RestrictedUnpickler(io.BytesIO(data), source="<pickle bytes>", encoding=encoding).load()
