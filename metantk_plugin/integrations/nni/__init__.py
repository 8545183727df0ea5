"""NNI 3.0 integration: MetaNTK (or any registered proxy) as an evaluator, a pre-filter
and a search strategy, plus NAS-Bench-201 interop.

* :class:`ProxyEvaluator`: an ``nni.trace``-d evaluator reporting the proxy score.
* :class:`ProxyFilter`: ``filter_fn`` for ``Filter`` in ``Chain(strategy, Filter(...))``.
* :class:`MetaNTKPruning`: the MetaNTK-NAS operator-pruning search as an NNI strategy.
* :func:`sequential_config`: an in-process experiment configuration (no web server).
* :func:`sample_to_string`, :func:`sample_from_string`, :func:`nb201_ground_truth`,
  :func:`nb201_accuracy`: NAS-Bench-201 strings and accuracies for NNI samples.
* :func:`kernel_ready`, :func:`score_network`: the scoring path, usable without NNI.

NNI is imported on first use of a name that needs it; if it is missing, an ImportError
names the install command ``pip install 'metantk-plugin[nni]'``.
"""

from __future__ import annotations

import importlib

from metantk_plugin.integrations.nni.network import NORM_MODES, kernel_ready
from metantk_plugin.integrations.nni.scoring import INVALID_SCORE, ProxyScore, score_network

__all__ = [
    "INVALID_SCORE",
    "NORM_MODES",
    "FilterDecision",
    "MetaNTKPruning",
    "NNIPrunableSpace",
    "ProxyEvaluator",
    "ProxyFilter",
    "ProxyScore",
    "kernel_ready",
    "nb201_accuracy",
    "nb201_ground_truth",
    "nni_database_path",
    "sample_from_string",
    "sample_to_string",
    "score_network",
    "sequential_config",
]

_LAZY = {
    "ProxyEvaluator": "evaluator",
    "ProxyFilter": "filter",
    "FilterDecision": "filter",
    "MetaNTKPruning": "strategy",
    "NNIPrunableSpace": "supernet",
    "sequential_config": "experiment",
    "sample_to_string": "nasbench201",
    "sample_from_string": "nasbench201",
    "nb201_ground_truth": "nasbench201",
    "nb201_accuracy": "nasbench201",
    "nni_database_path": "nasbench201",
}


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
