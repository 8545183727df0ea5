"""Rank ensembles: ``rank:a+b+c`` is the population proxy whose score for each
architecture is the mean of its within-run ranks under the network proxies a, b and c.

Over the n architectures of a run, with r_p(·) the rank 1 (worst) .. n (best) of proxy p's
raw scores oriented by p's sign (ties averaged; NaN counts as the worst value, tied with
−inf after orientation, and +inf/−inf rank as the best/worst values they are),

    rank:a+b+c_i = (r_a(i) + r_b(i) + r_c(i)) / 3          (higher is better)

Any such name resolves (:func:`~metantk_plugin.proxies.registry.resolve_proxy`), being
created on lookup rather than listed by ``available_proxies``; its inputs must be distinct
registered network proxies. :func:`ensemble_gain` measures what adding a proxy to an
ensemble gains in Spearman ρ against accuracy.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np

from metantk_plugin.proxies.population import within_run_ranks
from metantk_plugin.proxies.registry import RANK_ENSEMBLE_PREFIX, PopulationProxy, get_proxy
from metantk_plugin.scoring.correlation import spearman_difference

__all__ = ["ensemble_gain", "ensemble_name", "rank_ensemble"]


def ensemble_name(members: Sequence[str]) -> str:
    """``rank:a+b+...`` for the network proxies ``members``."""
    return RANK_ENSEMBLE_PREFIX + "+".join(members)


@functools.cache
def rank_ensemble(name: str) -> PopulationProxy:
    """The population proxy ``rank:a+b+...``; a ValueError for a malformed name or an input
    that is not a registered network proxy."""
    members = tuple(name[len(RANK_ENSEMBLE_PREFIX):].split("+")) if name.startswith(RANK_ENSEMBLE_PREFIX) else ()
    if not members or not all(members):
        raise ValueError(f"a rank ensemble is named rank:A+B+... with registered proxies A, B, ...; got {name!r}")
    if len(set(members)) != len(members):
        raise ValueError(f"a proxy is listed twice in the rank ensemble {name!r}")
    signs = {m: get_proxy(m).higher_is_better for m in members}  # a ValueError lists the known proxies

    def combine(columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Mean of the inputs' within-run ranks, each oriented by its sign (higher is better)."""
        ranks = [within_run_ranks(np.asarray(columns[m], dtype=np.float64), higher_is_better=h)
                 for m, h in signs.items()]
        return np.mean(ranks, axis=0)

    return PopulationProxy(name, members, combine, True, f"mean within-run rank of {', '.join(members)}")


def ensemble_gain(
    columns: Mapping[str, np.ndarray],
    accuracy: np.ndarray,
    base: Sequence[str],
    added: str,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> tuple[float, tuple[float, float]]:
    """ρ(rank:base+added, accuracy) − ρ(rank:base, accuracy) with its paired percentile 95%
    bootstrap interval (:func:`~metantk_plugin.scoring.correlation.spearman_difference`).

    ``columns`` maps each proxy to its raw scores ``[n]`` and ``accuracy`` is ``[n]``;
    architectures without a finite accuracy are left out before the ensembles rank the rest,
    and the resamples reuse those ranks (both ensembles see the same resamples)."""
    accuracy = np.asarray(accuracy, dtype=np.float64)
    keep = np.isfinite(accuracy)
    kept = {name: np.asarray(values, dtype=np.float64)[keep] for name, values in columns.items()}
    with_added = rank_ensemble(ensemble_name([*base, added])).combine(kept)
    without = rank_ensemble(ensemble_name(base)).combine(kept)
    return spearman_difference(with_added, without, accuracy[keep], n_bootstrap=n_bootstrap, seed=seed)
