"""Thin adapters that bring the core (kernels, proxies, search) to other NAS frameworks.

Each adapter imports its framework only when used, so the core never depends on them:
:mod:`metantk_plugin.integrations.nni` (NNI 3.0, extra ``nni``) and
:mod:`metantk_plugin.integrations.naslib` (NASLib from a source checkout, Python 3.9).
"""
