"""Scoring many architectures: the resumable score store, executors, rank correlation
with ground truth, and plots. The names below are imported on first use, so that
:mod:`metantk_plugin.scoring.settings` imports no torch."""

from __future__ import annotations

from metantk_plugin._lazy import lazy_exports

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

__getattr__ = lazy_exports(__name__, {
    "correlation": ("CorrelationResult", "correlate"),
    "executors": ("make_executor",),
    "run": ("score_architectures",),
    "settings": ("ScoreSettings",),
    "store": ("ScoreFileError", "ScoreStore", "export_csv", "read_scores", "read_settings"),
})
