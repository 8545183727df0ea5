"""NASLib's predictors package (the real one imports every predictor; this one, two)."""

from naslib.predictors.predictor import Predictor
from naslib.predictors.zerocost import ZeroCost

__all__ = ["Predictor", "ZeroCost"]
