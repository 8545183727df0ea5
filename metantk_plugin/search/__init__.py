"""MetaNTK-NAS / TE-NAS operator pruning, shared by the search spaces."""

from metantk_plugin.search.pruning import SearchResult, SearchSettings, run_pruning_search
from metantk_plugin.search.space import PrunableSpace

__all__ = ["PrunableSpace", "SearchResult", "SearchSettings", "run_pruning_search"]
