"""Scoring many architectures: the resumable score store, executors, rank correlation
with ground truth, and plots."""

from __future__ import annotations

from metantk_plugin.scoring.correlation import CorrelationResult, correlate
from metantk_plugin.scoring.executors import make_executor
from metantk_plugin.scoring.run import score_architectures
from metantk_plugin.scoring.settings import ScoreSettings
from metantk_plugin.scoring.store import ScoreFileError, ScoreStore, export_csv, read_scores, read_settings

__all__ = [
    "CorrelationResult",
    "ScoreFileError",
    "ScoreSettings",
    "ScoreStore",
    "correlate",
    "export_csv",
    "make_executor",
    "read_scores",
    "read_settings",
    "score_architectures",
]
