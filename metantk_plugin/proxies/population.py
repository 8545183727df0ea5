"""Population proxies: scores that rank an architecture against the others of a run,
computed from per-architecture proxy columns after scoring.

``te_nas`` is TE-NAS's rank combination of its two indicators (Chen et al. 2021). Over
the n architectures of a run, with r(·) the ascending rank 1..n (ties averaged),

    te_nas_i = r(−κ)_i + r(R)_i,      κ = ntk_cond (lower is better), R = linear_regions

so the architecture with the best condition number and the most linear regions gets the
highest score (2n). Higher is better; it changes when the population changes, so it is
not a per-network proxy and the registry of :mod:`metantk_plugin.proxies.registry` does
not hold it. ``metantk score --proxies te_nas`` scores its two inputs and
:func:`metantk_plugin.scoring.store.read_scores` adds the column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

__all__ = ["POPULATION_PROXIES", "PopulationProxy", "population_proxy", "te_nas_scores"]


@dataclass(frozen=True)
class PopulationProxy:
    """A score of each architecture relative to a population, from the columns ``inputs``."""

    name: str
    inputs: tuple[str, ...]
    combine: Callable[[Mapping[str, np.ndarray]], np.ndarray]
    higher_is_better: bool
    summary: str


def te_nas_scores(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """``r(−ntk_cond) + r(linear_regions)`` for the arrays in ``columns`` (float64 ``[n]``).

    A NaN input ranks lowest (NaN condition numbers do not occur: they are mapped to inf)."""
    kappa = np.asarray(columns["ntk_cond"], dtype=np.float64)
    regions = np.asarray(columns["linear_regions"], dtype=np.float64)
    if kappa.shape != regions.shape or kappa.ndim != 1:
        raise ValueError(f"ntk_cond {kappa.shape} and linear_regions {regions.shape} must be equal 1-D arrays")
    return _rank(-kappa) + _rank(regions)


def _rank(values: np.ndarray) -> np.ndarray:
    return rankdata(np.where(np.isnan(values), -np.inf, values), method="average")


POPULATION_PROXIES: dict[str, PopulationProxy] = {
    "te_nas": PopulationProxy(
        "te_nas", ("ntk_cond", "linear_regions"), te_nas_scores, True,
        "TE-NAS: rank of −ntk_cond plus rank of linear_regions within the run (higher is better)",
    ),
}


def population_proxy(name: str) -> PopulationProxy:
    """The population proxy ``name``; a ValueError lists the known ones."""
    try:
        return POPULATION_PROXIES[name]
    except KeyError:
        raise ValueError(f"unknown population proxy {name!r}; available: {', '.join(POPULATION_PROXIES)}") from None
