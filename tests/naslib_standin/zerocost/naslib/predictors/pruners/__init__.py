"""``naslib.predictors.pruners``."""
