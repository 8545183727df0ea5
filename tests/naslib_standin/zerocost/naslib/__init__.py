"""Stand-in for NASLib used only by the tests (see tests/naslib_standin/README.md).

Mirrors automl/NASLib branch zerocost (HEAD 8c45f19d, NAS-Bench-Suite-Zero): the measure
registry is naslib.predictors.pruners.measures.
"""
