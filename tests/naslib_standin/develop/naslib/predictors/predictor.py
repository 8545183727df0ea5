"""``naslib.predictors.predictor``."""

from naslib_standin_core.predictor import Predictor

__all__ = ["Predictor"]
