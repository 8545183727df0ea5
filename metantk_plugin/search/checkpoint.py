"""A resumable search: the state of an unfinished pruning search in a JSON file.

:func:`~metantk_plugin.search.pruning.run_pruning_search` saves its state (the alphas,
the finished rounds, the candidates of the round under way with the deltas they have so
far, the evaluation counts and the seconds spent, in all and per round) every
``every_seconds`` and when it stops for any reason, and picks it up again when started
with the same checkpoint. A checkpoint belongs to one search: its ``identity`` (space,
settings and whatever the caller adds, such as the data spec and the supernet size) must
match to resume. The file is plain JSON, written atomically, and never runs code when read.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from metantk_plugin.atomic_files import write_file_atomically

__all__ = ["SearchCheckpoint"]

_FORMAT = "metantk-search-checkpoint"
_VERSION = 1
_KEYS = ("alphas", "rounds", "current", "kernel_evaluations", "region_evaluations", "seconds")
_TIMING_KEYS = ("round_seconds", "current_round_seconds")
"""Saved since the search reports per-round seconds; a checkpoint without them still resumes."""


class SearchCheckpoint:
    """The checkpoint file ``path`` of the search named by ``identity`` (JSON values)."""

    def __init__(self, path: str | Path, identity: Mapping[str, Any], *, every_seconds: float = 30.0):
        self.path = Path(path)
        self.identity = json.loads(json.dumps(dict(identity), default=_json_value))
        self.every_seconds = every_seconds
        self._last_save = -math.inf
        self._warned = False

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is no file. ValueError when the file is not
        a checkpoint, is damaged, or belongs to another search (naming what differs)."""
        if not self.path.exists():
            return None
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{self.path} is not a readable search checkpoint ({error}); remove it to start "
                             "afresh") from None
        if not isinstance(saved, dict) or saved.get("format") != _FORMAT or not all(k in saved for k in _KEYS):
            raise ValueError(f"{self.path} is not a metantk search checkpoint; remove it to start afresh")
        if saved.get("version") != _VERSION:
            raise ValueError(f"{self.path} is a version {saved.get('version')!r} checkpoint; this package reads "
                             f"version {_VERSION}")
        if saved.get("identity") != self.identity:
            raise ValueError(f"{self.path} holds another search ({_difference(saved.get('identity'), self.identity)}); "
                             "use another folder, or remove it to start afresh")
        return saved

    def save(self, state: Mapping[str, Any], *, force: bool = False) -> bool:
        """Write ``state`` (the keys of a checkpoint) when ``every_seconds`` have passed since
        the last save, or at once when ``force``; True when written. A file that cannot be
        written is a warning (once), not an error: the search matters more than its checkpoint."""
        now = time.monotonic()
        if not force and now - self._last_save < self.every_seconds:
            return False
        text = json.dumps({"format": _FORMAT, "version": _VERSION, "identity": self.identity,
                           **{k: state[k] for k in _KEYS + _TIMING_KEYS}}, default=_json_value)
        self._last_save = now
        try:
            write_file_atomically(self.path, text)
        except OSError as error:  # the search goes on; only its resumability is lost
            if not self._warned:
                warnings.warn(f"cannot write the search checkpoint {self.path} ({error.strerror or error}); "
                              "the search goes on, but cannot be resumed if it stops", RuntimeWarning, stacklevel=2)
                self._warned = True
            return False
        return True

    def remove(self) -> None:
        """Delete the file (the search finished and its result is saved)."""
        self.path.unlink(missing_ok=True)


def _json_value(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _difference(saved: Any, wanted: Mapping[str, Any]) -> str:
    if not isinstance(saved, dict):
        return "it names no search"
    for key in sorted(set(saved) | set(wanted)):
        if saved.get(key) != wanted.get(key):
            return f"{key}: {saved.get(key)!r} there, {wanted.get(key)!r} now"
    return "it differs"
