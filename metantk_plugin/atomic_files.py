"""Whole-file writes that a reader never sees half done.

The new contents go into a temporary file beside the target (``.<name>.<random>.partial``),
which is then renamed over it (``os.replace``, atomic on POSIX and Windows): a reader sees
the old file or the whole new one. The temporary is removed when writing fails. Missing
parent folders are created. (Score files are HDF5 and committed by
:mod:`metantk_plugin.scoring.store` itself.)
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import IO, Callable

__all__ = ["write_atomically", "write_file_atomically"]

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def write_atomically(path: str | os.PathLike, write: Callable[[IO], None], *, binary: bool = False) -> Path:
    """``write(file)`` into a temporary file beside ``path`` (opened ``"wb"`` when ``binary``,
    else ``"w"``), then rename it into place; returns ``path`` as a :class:`~pathlib.Path`.

    The file gets the permissions a plain ``open(path, "w")`` would give it (0666 less the
    umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary, handle = _create_temporary(path)
    try:
        with os.fdopen(handle, "wb" if binary else "w") as file:
            write(file)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def write_file_atomically(path: str | os.PathLike, contents: str | bytes) -> Path:
    """:func:`write_atomically` of ``contents`` as they are (a ``str`` is UTF-8 encoded, with
    no newline translation)."""
    data = contents.encode() if isinstance(contents, str) else contents
    return write_atomically(path, lambda file: file.write(data), binary=True)


def _create_temporary(path: Path) -> tuple[Path, int]:
    """A new, empty file ``.<name>.<random>.partial`` beside ``path`` and its descriptor."""
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
        try:
            return temporary, os.open(temporary, _FLAGS, 0o666)
        except FileExistsError:
            continue
