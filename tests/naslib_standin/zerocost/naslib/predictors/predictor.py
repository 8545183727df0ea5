"""``naslib.predictors.predictor`` of the zerocost branch, whose Predictor is smaller."""

from naslib_standin_core.predictor import ZerocostBranchPredictor as Predictor

__all__ = ["Predictor"]
