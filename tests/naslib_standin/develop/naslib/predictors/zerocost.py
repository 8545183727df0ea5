"""``naslib.predictors.zerocost``: ZeroCost calls ``naslib.predictors.utils.pruners.predictive``."""

from naslib_standin_core.zerocost import make_zero_cost

from naslib.predictors.utils.pruners import predictive

ZeroCost = make_zero_cost(predictive.find_measures, __name__)

__all__ = ["ZeroCost"]
