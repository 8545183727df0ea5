"""NASLib's ``ZeroCost`` predictor (``naslib/predictors/zerocost.py``).

Both branches define the same class; they differ only in which ``predictive`` module it
calls, so each layout builds its class with :func:`make_zero_cost`.
"""

from __future__ import annotations

import math

import torch

from naslib_standin_core.predictor import Predictor


def make_zero_cost(find_measures, module: str) -> type:
    """The ``ZeroCost`` class of a layout whose ``find_measures`` is given."""

    class ZeroCost(Predictor):
        def __init__(self, method_type="jacov"):
            # like NASLib: super().__init__ is not called, so ss_type is unset until set_ss_type
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
            self.method_type = method_type
            self.dataload = "random"
            self.num_imgs_or_batches = 1
            self.device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")

        def query(self, graph, dataloader=None, info=None):
            loss_fn = graph.get_loss_fn()
            n_classes = graph.num_classes
            score = find_measures(
                net_orig=graph,
                dataloader=dataloader,
                dataload_info=(self.dataload, self.num_imgs_or_batches, n_classes),
                device=self.device,
                loss_fn=loss_fn,
                measure_names=[self.method_type],
            )
            if math.isnan(score) or math.isinf(score):
                score = -1e8
            if self.method_type == "synflow":
                if score == 0.0:
                    return score
                score = math.log(score) if score > 0 else -math.log(-score)
            return score

    ZeroCost.__module__ = module
    return ZeroCost
