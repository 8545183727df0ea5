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

import math

from torch import nn

from metantk_plugin.integrations.nni._require import require_nni
from metantk_plugin.integrations.nni.network import NORM_MODES
from metantk_plugin.integrations.nni.scoring import INVALID_SCORE, ProxyScore, finite_metric, score_network
from metantk_plugin.integrations.nni.tasks import resolve_tasks
from metantk_plugin.proxies.registry import get_proxy
from metantk_plugin.tasks import TaskBatch

nni = require_nni("nni")
_evaluator = require_nni("nni.nas.evaluator")

__all__ = ["ProxyEvaluator"]


@nni.trace
class ProxyEvaluator(_evaluator.Evaluator):
    """Scores a model with the registered proxy ``proxy`` (default MetaNTK) and reports it to NNI.

    ``tasks``, ``task_options``: see :mod:`metantk_plugin.integrations.nni.tasks`
    (``n_tasks`` tasks drawn once with ``task_seed``); ``seed`` re-draws the
    model's weights and seeds the proxy; ``norm`` and ``feature_layer`` as in
    :func:`kernel_ready`; ``invalid_score`` replaces non-finite scores; ``proxy_options``
    are passed to the proxy (e.g. ``{'algorithm': 'anil'}``); ``device`` runs the kernels.
    """

    def __init__(
        self,
        proxy: str = "metantk",
        *,
        tasks: TaskBatch | str | None = None,
        n_tasks: int = 3,
        task_seed: int = 0,
        task_options: dict | None = None,
        seed: int = 0,
        norm: str = "group",
        feature_layer: str | None = "auto",
        invalid_score: float = INVALID_SCORE,
        proxy_options: dict | None = None,
        device: str | None = None,
    ):
        get_proxy(proxy)  # a ValueError lists the registered names
        if norm not in NORM_MODES:
            raise ValueError(f"norm must be one of {NORM_MODES}, got {norm!r}")
        if not isinstance(invalid_score, (int, float)) or not math.isfinite(invalid_score):
            raise ValueError(f"invalid_score must be a finite number, got {invalid_score!r}")
        if proxy_options is not None and not isinstance(proxy_options, dict):
            raise ValueError(f"proxy_options must be a dict of keyword arguments, got {proxy_options!r}")
        self.proxy = proxy
        self.tasks = resolve_tasks(tasks, n_tasks=n_tasks, task_seed=task_seed, task_options=task_options)
        self.seed = seed
        self.norm = norm
        self.feature_layer = feature_layer
        self.invalid_score = float(invalid_score)
        self.proxy_options = dict(proxy_options or {})
        self.device = device

    def extra_repr(self) -> str:
        return f"proxy={self.proxy!r}, seed={self.seed}, norm={self.norm!r}, tasks={self.tasks.n_tasks}"

    def score(self, model: nn.Module) -> ProxyScore:
        """The proxy score of ``model`` without reporting it."""
        return score_network(model, self.tasks, proxy=self.proxy, seed=self.seed, norm=self.norm,
                             feature_layer=self.feature_layer, invalid_score=self.invalid_score,
                             device=self.device, **self.proxy_options)

    def evaluate(self, model: nn.Module) -> ProxyScore:
        """Score ``model`` and report the raw value (intermediate) and the score (final) to NNI."""
        result = self.score(model)
        raw = finite_metric(result.raw)
        if raw is not None:
            nni.report_intermediate_result(raw)
        nni.report_final_result(result.score)
        return result
