"""MetaNTK-NAS / TE-NAS operator pruning, shared by the search spaces. The names below are
imported on first use, so that :mod:`metantk_plugin.search.settings` imports no torch."""

from metantk_plugin._lazy import lazy_exports

__all__ = ["PrunableSpace", "SearchCheckpoint", "SearchResult", "SearchSettings", "run_pruning_search"]

__getattr__ = lazy_exports(__name__, {
    "checkpoint": ("SearchCheckpoint",),
    "pruning": ("SearchResult", "run_pruning_search"),
    "settings": ("SearchSettings",),
    "space": ("PrunableSpace",),
})
