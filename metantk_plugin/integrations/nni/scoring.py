"""One proxy score for one network, in NNI's maximise convention.

``raw`` is the registered proxy's own value (e.g. the MetaNTK condition number, lower is
better); ``score`` is the registry's higher-is-better view of it (for MetaNTK
``-log(raw)``), the number NNI strategies maximise. A non-finite score (an infinite
condition number from a degenerate kernel, a NaN) becomes :data:`INVALID_SCORE`: NNI's
strategies sort and compare metrics, and its web/training-service path serialises them
as JSON, where ``inf`` and ``nan`` are not numbers.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

from torch import nn

from metantk_plugin.integrations.nni.network import kernel_ready
from metantk_plugin.proxies.registry import compute_proxy, get_proxy
from metantk_plugin.tasks import TaskBatch

__all__ = ["INVALID_SCORE", "ProxyScore", "finite_metric", "score_network"]

INVALID_SCORE = -1.0e9
"""Score reported for a non-finite proxy value: below any finite -log condition number
(a condition number of e^1e9 is far past float64's range) and any sane proxy score."""


@dataclass(frozen=True)
class ProxyScore:
    """``raw`` proxy value, its higher-is-better ``score`` (finite: non-finite values map to
    ``invalid_score``), and the ``proxy`` name and ``seed`` that produced them."""

    proxy: str
    raw: float
    score: float
    seed: int


def finite_metric(value: float) -> float | None:
    """``value`` made JSON-safe for NNI: ±inf clipped to ±float max, NaN -> None."""
    if math.isnan(value):
        return None
    return max(-sys.float_info.max, min(sys.float_info.max, value))


def score_network(
    network: nn.Module,
    tasks: TaskBatch,
    *,
    proxy: str = "metantk",
    seed: int = 0,
    norm: str = "group",
    feature_layer: str | None = "auto",
    invalid_score: float = INVALID_SCORE,
    device: str | None = None,
    **proxy_options,
) -> ProxyScore:
    """Score ``network`` (any ``nn.Module``, e.g. a model NNI built) with proxy ``proxy``:
    :func:`kernel_ready` copy from ``seed`` (weights, norm, features), then the registered
    proxy with ``seed`` on ``tasks``."""
    entry = get_proxy(proxy)
    if not math.isfinite(invalid_score):
        raise ValueError(f"invalid_score must be a finite float, got {invalid_score!r}")
    net = kernel_ready(network, seed=seed, norm=norm, feature_layer=feature_layer, device=device)
    raw = compute_proxy(proxy, net, tasks.to(device) if device is not None else tasks, seed=seed, **proxy_options)
    try:
        score = entry.oriented(raw)
    except (ValueError, OverflowError):  # e.g. a log of a value outside its domain
        score = math.nan
    return ProxyScore(proxy, raw, score if math.isfinite(score) else float(invalid_score), seed)
