"""Rank agreement between proxy scores and trained accuracy, with bootstrap intervals.

Scores are first oriented so that higher predicts better (raw values negated for
lower-is-better proxies; NaN, from an undefined score, counts as the worst value).
For n architectures with oriented scores s and accuracies a:

* Spearman ρ: Pearson correlation of the average ranks of s and a.
* Kendall τ-b (``scipy.stats.kendalltau``).
* top-10% precision: with k = ⌈0.1 n⌉, the share of the k best-scored architectures that
  are among the k most accurate. Ties at the cut-off are shared: an architecture in a
  tied group that straddles the cut-off belongs to the top by the fraction of the
  group's places left, so the value is the expectation over random tie-breaking.

Each comes with a percentile 95% interval from ``n_bootstrap`` resamples of the
architectures with replacement (seeded), so the intervals are reproducible.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import ConstantInputWarning, kendalltau, rankdata

__all__ = ["CorrelationResult", "correlate", "oriented", "spearman", "spearman_difference", "top_precision"]


@dataclass(frozen=True)
class CorrelationResult:
    """Agreement of one proxy with one accuracy; intervals are (low, high) 95% bootstrap bounds."""

    proxy: str
    target: str
    n: int
    spearman: float
    spearman_ci: tuple[float, float]
    kendall: float
    kendall_ci: tuple[float, float]
    top_precision: float
    top_precision_ci: tuple[float, float]
    top_fraction: float
    higher_is_better: bool

    def to_dict(self) -> dict:
        d = asdict(self)
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = [_json_float(v) for v in value]
            elif isinstance(value, float):
                d[key] = _json_float(value)
        return d


def _json_float(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def oriented(values, higher_is_better: bool) -> np.ndarray:
    """Raw scores as float64 with higher = better; NaN becomes -inf (the worst)."""
    x = np.asarray(values, dtype=np.float64)
    x = x if higher_is_better else -x
    return np.where(np.isnan(x), -np.inf, x)


def spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman ρ along the last axis of ``x`` and ``y`` (``[..., n]``); NaN for constant rows."""
    rx = rankdata(x, axis=-1)
    ry = rankdata(y, axis=-1)
    rx = rx - rx.mean(-1, keepdims=True)
    ry = ry - ry.mean(-1, keepdims=True)
    denom = np.sqrt((rx * rx).sum(-1) * (ry * ry).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (rx * ry).sum(-1) / np.where(denom > 0, denom, 1.0), np.nan)


def _top_membership(values: np.ndarray, k: int) -> np.ndarray:
    """Fraction in [0, 1] of each item's membership of the top ``k`` (ties shared)."""
    greater = rankdata(-values, method="min") - 1  # items strictly better
    tied = rankdata(-values, method="max") - greater  # size of the item's tied group
    return np.clip(k - greater, 0, tied) / tied


def top_precision(scores: np.ndarray, accuracy: np.ndarray, fraction: float = 0.1) -> float:
    """Share of the top ``fraction`` by score that is in the top ``fraction`` by accuracy."""
    k = max(1, math.ceil(fraction * len(scores)))
    return float((_top_membership(scores, k) * _top_membership(accuracy, k)).sum() / k)


def _kendall(x: np.ndarray, y: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)
        return float(kendalltau(x, y).statistic)


def _interval(samples: np.ndarray) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return (math.nan, math.nan)
    low, high = np.percentile(finite, [2.5, 97.5])
    return (float(low), float(high))


def correlate(
    scores: pd.DataFrame,
    accuracy: pd.Series,
    directions: Mapping[str, bool],
    *,
    target: str = "accuracy",
    n_bootstrap: int = 1000,
    top_fraction: float = 0.1,
    seed: int = 0,
) -> list[CorrelationResult]:
    """Agreement of every proxy column of ``scores`` (an ``arch`` column plus the columns
    named in ``directions``, which maps a proxy to higher_is_better) with ``accuracy``
    (a Series indexed by architecture string). Architectures without an accuracy are left out."""
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be an int >= 0, got {n_bootstrap!r}")
    if not 0 < top_fraction <= 1:
        raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction!r}")
    missing = [p for p in directions if p not in scores.columns]
    if missing:
        raise ValueError(f"no score column for {missing}; the file has {list(scores.columns)}")
    acc = accuracy.reindex(scores["arch"]).to_numpy(dtype=np.float64)
    keep = np.isfinite(acc)
    acc = acc[keep]
    n = int(keep.sum())
    if n < 3:
        raise ValueError(f"only {n} of {len(scores)} scored architectures have a {target}; need at least 3")
    resamples = np.random.default_rng(seed).integers(0, n, size=(n_bootstrap, n))
    results = []
    for proxy, higher in directions.items():
        s = oriented(scores[proxy].to_numpy()[keep], higher)
        boot_s, boot_a = s[resamples], acc[resamples]
        boot_rho = spearman(boot_s, boot_a) if n_bootstrap else np.zeros(0)
        boot_tau = np.array([_kendall(bs, ba) for bs, ba in zip(boot_s, boot_a)])
        boot_top = np.array([top_precision(bs, ba, top_fraction) for bs, ba in zip(boot_s, boot_a)])
        results.append(CorrelationResult(
            proxy=proxy, target=target, n=n,
            spearman=float(spearman(s, acc)), spearman_ci=_interval(boot_rho),
            kendall=_kendall(s, acc), kendall_ci=_interval(boot_tau),
            top_precision=top_precision(s, acc, top_fraction), top_precision_ci=_interval(boot_top),
            top_fraction=top_fraction, higher_is_better=bool(higher),
        ))
    return results


def spearman_difference(
    first: np.ndarray, second: np.ndarray, accuracy: np.ndarray, *, n_bootstrap: int = 1000, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """ρ(first, accuracy) − ρ(second, accuracy) for two oriented score arrays on the same
    architectures, with a paired percentile 95% bootstrap interval (both proxies see the
    same resamples, so the interval reflects only their disagreement)."""
    first, second, accuracy = (np.asarray(v, dtype=np.float64) for v in (first, second, accuracy))
    if not first.shape == second.shape == accuracy.shape or first.ndim != 1:
        raise ValueError("first, second and accuracy must be 1-D arrays of equal length")
    delta = float(spearman(first, accuracy) - spearman(second, accuracy))
    idx = np.random.default_rng(seed).integers(0, len(accuracy), size=(n_bootstrap, len(accuracy)))
    boot = spearman(first[idx], accuracy[idx]) - spearman(second[idx], accuracy[idx])
    return delta, _interval(boot)
