"""The one error type for dataset files and folders that are missing or malformed."""

from __future__ import annotations

__all__ = ["DatasetError"]


class DatasetError(ValueError):
    """A dataset file or folder is missing, or is not in the format the reader expects.

    The message always says which file or folder was expected where."""
