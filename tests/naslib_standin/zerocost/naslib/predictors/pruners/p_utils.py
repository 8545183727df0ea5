"""``naslib.predictors.pruners.p_utils``."""

from naslib_standin_core.p_utils import get_layer_metric_array, get_some_data, get_some_data_grasp

__all__ = ["get_layer_metric_array", "get_some_data", "get_some_data_grasp"]
