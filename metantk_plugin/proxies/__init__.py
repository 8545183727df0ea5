"""Zero-cost proxies and their name-keyed registry; importing this package registers the
built-in proxies (:mod:`metantk_plugin.proxies.builtin`)."""

from metantk_plugin.proxies import builtin  # noqa: F401  (registers the built-in proxies)
from metantk_plugin.proxies.metantk import MetaNTK, MetaNTKResult
from metantk_plugin.proxies.registry import (
    PopulationProxy,
    Proxy,
    available_proxies,
    compute_proxy,
    get_proxy,
    register_population_proxy,
    register_proxy,
    resolve_proxy,
)
from metantk_plugin.proxies.te_nas import linear_region_count, ntk_condition_number

__all__ = [
    "MetaNTK",
    "MetaNTKResult",
    "PopulationProxy",
    "Proxy",
    "available_proxies",
    "compute_proxy",
    "get_proxy",
    "linear_region_count",
    "ntk_condition_number",
    "register_population_proxy",
    "register_proxy",
    "resolve_proxy",
]
