"""``naslib.predictors.utils.pruners``."""
