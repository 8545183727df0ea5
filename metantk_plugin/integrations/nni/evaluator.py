"""An NNI evaluator that scores each sampled model with a zero-cost proxy instead of training.

For every model NNI submits, :class:`ProxyEvaluator` computes :func:`score_network` and
reports, through NNI's own calls,

* the final metric (``nni.report_final_result``): the proxy's higher-is-better score
  (MetaNTK: ``-log`` condition number), :data:`INVALID_SCORE` when not finite;
* one intermediate metric (``nni.report_intermediate_result``): the raw proxy value,
  ±inf clipped to ±float max, left out when NaN.

The class is ``nni.trace``-d, so NNI can record and rebuild it from its arguments. A
:class:`TaskBatch` argument only lives in this process: use the in-process
``'sequential'`` engine (:func:`sequential_config`), or pass ``tasks`` as a data spec.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from torch import nn

from metantk_plugin.integrations.nni._require import require_nni
from metantk_plugin.integrations.nni.scoring import ProxyScore, finite_metric
from metantk_plugin.integrations.nni.tasks import ProxyScoring

nni = require_nni("nni")
_evaluator = require_nni("nni.nas.evaluator")

__all__ = ["ProxyEvaluator"]

_SCORING_FIELDS = frozenset(f.name for f in fields(ProxyScoring))


@nni.trace
class ProxyEvaluator(_evaluator.Evaluator):
    """Scores a model with the registered proxy ``proxy`` (default MetaNTK) and reports it to NNI.

    ``options`` are the keyword arguments of :meth:`ProxyScoring.from_options`: ``tasks``,
    ``task_options`` (see :mod:`metantk_plugin.integrations.nni.tasks`), ``n_tasks`` tasks
    drawn once with ``task_seed``, ``seed``, ``norm``, ``feature_layer``,
    ``invalid_score``, ``proxy_options`` and ``device``; each is also an attribute.
    """

    def __init__(self, proxy: str = "metantk", **options: Any):
        self.scoring = ProxyScoring.from_options(proxy, **options)

    def __getattr__(self, name: str) -> Any:
        if name != "scoring" and name in _SCORING_FIELDS:
            return getattr(self.scoring, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def extra_repr(self) -> str:
        return f"proxy={self.proxy!r}, seed={self.seed}, norm={self.norm!r}, tasks={self.tasks.n_tasks}"

    def score(self, model: nn.Module) -> ProxyScore:
        """The proxy score of ``model`` without reporting it."""
        return self.scoring.score(model)

    def evaluate(self, model: nn.Module) -> ProxyScore:
        """Score ``model`` and report the raw value (intermediate) and the score (final) to NNI."""
        result = self.score(model)
        raw = finite_metric(result.raw)
        if raw is not None:
            nni.report_intermediate_result(raw)
        nni.report_final_result(result.score)
        return result
