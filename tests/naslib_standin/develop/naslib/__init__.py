"""Stand-in for NASLib used only by the tests (see tests/naslib_standin/README.md).

Mirrors automl/NASLib branch Develop (HEAD 0b51bc18): the measure registry is
naslib.predictors.utils.pruners.measures.
"""
