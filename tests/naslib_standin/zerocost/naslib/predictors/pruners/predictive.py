"""``naslib.predictors.pruners.predictive``."""

from naslib_standin_core.predictive import UNREDUCED_ZEROCOST, copynet, find_measures_arrays, make_find_measures

find_measures = make_find_measures(UNREDUCED_ZEROCOST)

__all__ = ["copynet", "find_measures", "find_measures_arrays"]
