"""``naslib.predictors.utils.pruners.predictive``."""

from naslib_standin_core.predictive import UNREDUCED_DEVELOP, copynet, find_measures_arrays, make_find_measures

find_measures = make_find_measures(UNREDUCED_DEVELOP)

__all__ = ["copynet", "find_measures", "find_measures_arrays"]
