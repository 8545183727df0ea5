"""``naslib.predictors.utils``."""
