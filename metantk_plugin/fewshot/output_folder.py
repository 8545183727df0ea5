"""The output folder of a few-shot run: ``checkpoint.pt``, ``result.json`` and
``training_curve.png``, every file written atomically.

Rules: a checkpoint whose training settings match is resumed (which gives bitwise the same
parameters as not stopping); a checkpoint or result made with other settings is never
replaced unless ``force`` is set. A folder of ``None`` keeps nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from metantk_plugin.atomic_files import write_atomically
from metantk_plugin.fewshot.checkpoint import Checkpoint, differing_settings, load_checkpoint, save_checkpoint
from metantk_plugin.fewshot.plots import plot_training_curve
from metantk_plugin.fewshot.training import TrainingHistory

__all__ = ["CHECKPOINT_NAME", "CURVE_NAME", "RESULT_NAME", "OutputConflict", "OutputFolder"]

CHECKPOINT_NAME, RESULT_NAME, CURVE_NAME = "checkpoint.pt", "result.json", "training_curve.png"


class OutputConflict(ValueError):
    """The output folder holds a checkpoint or result made with other settings."""


def _describe(differences: list[str], saved: dict, current: dict) -> str:
    return ", ".join(f"{k}: {saved.get(k, '<absent>')!r} there vs {current.get(k, '<absent>')!r} now"
                     for k in differences)


class OutputFolder:
    """The folder ``path`` of a run of ``settings`` (plain values) training ``steps`` steps.
    A checkpoint resumes when the settings differ in ``resumable_despite`` at most (settings
    that do not change the trained parameters) and it has run no more than ``steps``;
    ``log`` receives one line per decision."""

    def __init__(self, path: str | Path | None, settings: dict[str, Any], *, steps: int,
                 resumable_despite: tuple[str, ...] = (), force: bool = False,
                 log: Callable[[str], None] = lambda message: None):
        self.path = Path(path) if path is not None else None
        if self.path is not None and self.path.exists() and not self.path.is_dir():
            raise OutputConflict(f"--out {self.path} exists and is not a folder")
        self.settings, self.steps, self.resumable_despite = settings, steps, resumable_despite
        self.force, self.log = force, log

    def _file(self, name: str) -> Path | None:
        return self.path / name if self.path is not None else None

    def _existing(self, name: str) -> Path | None:
        file = self._file(name)
        return file if file is not None and file.is_file() else None

    def finished_result(self) -> dict[str, Any] | None:
        """A stored result of exactly these settings (None when there is none, or with
        ``force``); OutputConflict for one of other settings."""
        path = self._existing(RESULT_NAME)
        if path is None:
            return None
        try:
            stored = json.loads(path.read_text())
            saved = stored["settings"]
        except (ValueError, KeyError, TypeError):
            stored, saved = None, {}
        if stored is not None and not differing_settings(saved, self.settings, ignore=("device",)):
            if self.force:
                return None
            self.log(f"{path} already holds the result of these settings; nothing to do (--force to redo)")
            return stored
        if self.force:
            return None
        detail = (_describe(differing_settings(saved, self.settings), saved, self.settings) if stored is not None
                  else "unreadable")
        raise OutputConflict(f"refusing to overwrite {path}, a result of other settings ({detail}). Pass --force to "
                             "replace it (a matching checkpoint is still resumed) or choose another --out")

    def resume_point(self) -> Checkpoint | None:
        """The checkpoint to resume from, None to start fresh (OutputConflict when refusing);
        the folder exists afterwards."""
        checkpoint = self._resumable()
        if self.path is not None:
            self.path.mkdir(parents=True, exist_ok=True)
        return checkpoint

    def _resumable(self) -> Checkpoint | None:
        path = self._existing(CHECKPOINT_NAME)
        if path is None:
            return None
        try:
            checkpoint = load_checkpoint(path)
        except ValueError as error:
            if self.force:
                self.log(f"replacing unreadable checkpoint {path} (--force)")
                return None
            raise OutputConflict(f"{error}; pass --force to replace it or choose another --out") from None
        differences = differing_settings(checkpoint.settings, self.settings, ignore=self.resumable_despite)
        if not differences and checkpoint.iteration <= self.steps:
            self.log(f"resuming from {path} at iteration {checkpoint.iteration}")
            return checkpoint
        if differences:
            reason = ("it was made with other training settings "
                      f"({_describe(differences, checkpoint.settings, self.settings)})")
        else:
            reason = f"it has already run {checkpoint.iteration} iterations, more than the {self.steps} asked"
        if self.force:
            self.log(f"starting afresh and replacing {path} (--force): {reason}")
            return None
        raise OutputConflict(f"refusing to overwrite {path}: {reason}. Pass --force to replace it or choose "
                             "another --out")

    def save_checkpoint(self, iteration: int, state: dict[str, Any], history: TrainingHistory) -> None:
        """Keep the training state after ``iteration`` steps (nothing without a folder)."""
        path = self._file(CHECKPOINT_NAME)
        if path is not None:
            save_checkpoint(path, Checkpoint(self.settings, iteration, state, history.to_dict()))

    def write_result(self, result: dict[str, Any], history: TrainingHistory, *, title: str) -> dict[str, Any]:
        """``result`` with the paths of the folder's files under ``"files"``, after drawing the
        training curve and writing ``result.json`` (unchanged without a folder)."""
        if self.path is None:
            return result
        curve = plot_training_curve(history, self.path / CURVE_NAME, title=title)
        result["files"] = {"result": str(self.path / RESULT_NAME), "checkpoint": str(self.path / CHECKPOINT_NAME),
                           "training_curve": str(curve)}

        def dump(file) -> None:
            json.dump(result, file, indent=2)
            file.write("\n")

        write_atomically(self.path / RESULT_NAME, dump)
        return result
