"""Zero-cost proxies and their name-keyed registry."""

from metantk_plugin.proxies.metantk import MetaNTK, MetaNTKResult
from metantk_plugin.proxies.registry import Proxy, available_proxies, compute_proxy, get_proxy, register_proxy
from metantk_plugin.proxies.te_nas import linear_region_count, ntk_condition_number

__all__ = [
    "MetaNTK",
    "MetaNTKResult",
    "Proxy",
    "available_proxies",
    "compute_proxy",
    "get_proxy",
    "linear_region_count",
    "ntk_condition_number",
    "register_proxy",
]
