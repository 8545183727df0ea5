"""``naslib.predictors.pruners.measures``: the zero-cost measure registry."""

from naslib_standin_core.builtin_measures import load_all
from naslib_standin_core.registry import _measure_impls, available_measures, calc_measure, measure

__all__ = ["_measure_impls", "available_measures", "calc_measure", "load_all", "measure"]

load_all()
