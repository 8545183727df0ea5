"""Population proxies: scores that rank an architecture against the others of a run,
computed from per-architecture proxy columns after scoring.

``te_nas`` is TE-NAS's rank combination of its two indicators (Chen et al. 2021). Over
the n architectures of a run, with r(·) the ascending rank 1..n (ties averaged),

    te_nas_i = r(−κ)_i + r(R)_i,      κ = ntk_cond (lower is better), R = linear_regions

so the architecture with the best condition number and the most linear regions gets the
highest score (2n). Higher is better; it changes when the population changes, so it is
registered as a population proxy (:func:`~metantk_plugin.proxies.registry.resolve_proxy`
answers for it; :func:`~metantk_plugin.proxies.registry.compute_proxy` does not score it).
``metantk score --proxies te_nas`` scores its two inputs and
:func:`metantk_plugin.scoring.store.read_scores` adds the column.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
from scipy.stats import rankdata

from metantk_plugin.proxies.registry import (
    POPULATION,
    PopulationProxy,
    available_proxies,
    population_proxy,
    register_population_proxy,
)
from metantk_plugin.scoring.correlation import oriented

__all__ = ["PopulationProxy", "population_proxy", "te_nas_scores", "within_run_ranks"]


@register_population_proxy("te_nas", inputs=("ntk_cond", "linear_regions"), higher_is_better=True)
def te_nas_scores(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """TE-NAS: rank of −ntk_cond plus rank of linear_regions within the run (higher is better).

    ``r(−ntk_cond) + r(linear_regions)`` for the arrays in ``columns`` (float64 ``[n]``).
    A NaN input ranks lowest (NaN condition numbers do not occur: they are mapped to inf)."""
    kappa = np.asarray(columns["ntk_cond"], dtype=np.float64)
    regions = np.asarray(columns["linear_regions"], dtype=np.float64)
    if kappa.shape != regions.shape or kappa.ndim != 1:
        raise ValueError(f"ntk_cond {kappa.shape} and linear_regions {regions.shape} must be equal 1-D arrays")
    return within_run_ranks(kappa, higher_is_better=False) + within_run_ranks(regions, higher_is_better=True)


def within_run_ranks(values: np.ndarray, *, higher_is_better: bool) -> np.ndarray:
    """Ranks 1 (worst) .. n (best) of the raw ``values [n]`` oriented by their sign, ties
    averaged; NaN counts as the worst value (tied with −inf after orientation)."""
    return rankdata(oriented(values, higher_is_better), method="average")


def __getattr__(name: str) -> object:
    if name == "POPULATION_PROXIES":
        warnings.warn(
            "metantk_plugin.proxies.population.POPULATION_PROXIES is deprecated; use "
            "metantk_plugin.proxies.resolve_proxy or available_proxies('population') instead",
            DeprecationWarning, stacklevel=2,
        )
        return MappingProxyType({n: population_proxy(n) for n in available_proxies(POPULATION)})
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
