"""A zero-cost pre-filter for NNI's ``Filter`` middleware, in front of any strategy.

    Chain(RegularizedEvolution(...), Filter(ProxyFilter(threshold=-6.0)))

NNI calls the filter with each model the strategy proposes; a rejected model is marked
``Invalid`` and never reaches the (expensive) evaluator. :class:`ProxyFilter` scores the
model with :func:`score_network` and accepts it only when

* ``threshold`` is set: ``score >= threshold`` (the higher-is-better score, e.g.
  ``-log`` condition number for MetaNTK), and
* ``top_fraction`` is set: the model lies in the top fraction of every candidate scored
  so far, itself included: with ``n`` scores, fewer than ``ceil(top_fraction * n)`` of
  them are strictly higher. The first candidate is always in the top fraction.

Scores are cached by sample, so a strategy that proposes a sample again gets the same
decision basis; every decision is kept in :attr:`ProxyFilter.history`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from metantk_plugin.integrations.nni.scoring import ProxyScore
from metantk_plugin.integrations.nni.tasks import ProxyScoring
from metantk_plugin.proxies.registry import get_proxy
from metantk_plugin.tasks import TaskBatch

__all__ = ["FilterDecision", "ProxyFilter"]


@dataclass(frozen=True)
class FilterDecision:
    """One candidate: its NNI ``sample``, its :class:`ProxyScore`, whether it was
    ``accepted`` and, if not, the ``reason``."""

    sample: dict[str, Any]
    result: ProxyScore
    accepted: bool
    reason: str


class ProxyFilter:
    """``filter_fn`` for ``nni.nas.strategy.middleware.Filter``: True keeps a model.

    At least one of ``threshold`` (minimum higher-is-better score) and ``top_fraction``
    (in (0, 1]) must be set; ``proxy`` and ``options`` as in :class:`ProxyEvaluator`
    (the keyword arguments of :meth:`ProxyScoring.from_options`).
    """

    def __init__(self, proxy: str = "metantk", *, threshold: float | None = None,
                 top_fraction: float | None = None, **options: Any):
        get_proxy(proxy)
        if threshold is None and top_fraction is None:
            raise ValueError("ProxyFilter needs a threshold, a top_fraction or both; got neither")
        if threshold is not None and not (isinstance(threshold, (int, float)) and math.isfinite(threshold)):
            raise ValueError(f"threshold must be a finite number (a higher-is-better score), got {threshold!r}")
        if top_fraction is not None and not (isinstance(top_fraction, (int, float)) and 0 < top_fraction <= 1):
            raise ValueError(f"top_fraction must lie in (0, 1], got {top_fraction!r}")
        self.scoring = ProxyScoring.from_options(proxy, **options)
        self.threshold = threshold
        self.top_fraction = top_fraction
        self.history: list[FilterDecision] = []
        self._cache: dict[str, ProxyScore] = {}

    @property
    def proxy(self) -> str:
        return self.scoring.proxy

    @property
    def tasks(self) -> TaskBatch:
        return self.scoring.tasks

    def __repr__(self) -> str:
        return f"ProxyFilter(proxy={self.proxy!r}, threshold={self.threshold}, top_fraction={self.top_fraction})"

    def __call__(self, model) -> bool:
        """Decide on ``model``, an NNI ``ExecutableModelSpace`` (``.sample``, ``.executable_model()``)."""
        sample = dict(model.sample)
        key = json.dumps(sample, sort_keys=True, default=str)
        result = self._cache.get(key)
        if result is None:
            result = self.scoring.score(model.executable_model())
            self._cache[key] = result
        reason = self._rejection(result.score)
        self.history.append(FilterDecision(sample, result, not reason, reason))
        return not reason

    def _rejection(self, score: float) -> str:
        if self.threshold is not None and score < self.threshold:
            return f"score {score:.6g} below threshold {self.threshold:.6g}"
        if self.top_fraction is not None:
            n = len(self.history) + 1
            allowed = math.ceil(self.top_fraction * n - 1e-9)  # 0.3 * 10 is 3.0000000000000004
            higher = sum(d.result.score > score for d in self.history)
            if higher >= allowed:
                return f"{higher} of {n} candidates score higher; top {self.top_fraction:.3g} keeps {allowed}"
        return ""
