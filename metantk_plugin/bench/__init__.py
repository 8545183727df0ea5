"""Scoring many architectures: the resumable score store, executors, rank correlation
with ground truth, and plots."""

from __future__ import annotations

from metantk_plugin.bench.correlation import CorrelationResult, correlate
from metantk_plugin.bench.executors import make_executor
from metantk_plugin.bench.scoring import score_architectures
from metantk_plugin.bench.settings import ScoreSettings
from metantk_plugin.bench.store import ScoreFileError, ScoreStore, export_csv, read_scores, read_settings

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
