"""Text users hand in, handled so that a huge or hostile value cannot hurt: error messages
quote it clipped, and text files are read only up to a size limit."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["MAX_TEXT_FILE_BYTES", "quoted", "read_text_file"]

MAX_TEXT_FILE_BYTES = 1_000_000
"""Largest genotype or architecture-list file read (1 MB; real ones are a few kB)."""


def quoted(value: object, limit: int = 80) -> str:
    """``repr(value)`` for an error message, clipped to ``limit`` characters (and the length
    of a clipped string said), so that a 300 MB value is never echoed whole."""
    size = len(value) if isinstance(value, (str, bytes)) else None
    text = repr(value[: 4 * limit] if size is not None else value)  # never repr a huge string whole
    if len(text) <= limit and (size is None or size <= 4 * limit):
        return text
    return text[: limit - 3] + "..." + (f" ({size:,} characters)" if size is not None else "")


def read_text_file(path: str | os.PathLike, *, what: str, limit: int = MAX_TEXT_FILE_BYTES) -> str:
    """The UTF-8 text of ``path`` (a ``what``, for messages); ValueError when it is larger
    than ``limit`` bytes or not text, before reading more than ``limit`` bytes."""
    path = Path(path)
    with path.open("rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        size = path.stat().st_size
        raise ValueError(f"{what} {path} is {size:,} bytes; expected a text file of at most {limit:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{what} {path} is not UTF-8 text (byte {error.start} is {data[error.start]:#04x})") from None
