"""The names the parsers offer whose defining modules import torch, written out here so that
``metantk --help`` and ``metantk COMMAND --help`` import neither torch nor the proxies. Each
is the constant named in its comment; ``tests/test_cli_help.py`` checks that they agree. Every
other name a parser offers is imported from its (light) defining module."""

from __future__ import annotations

from importlib import metadata

__all__ = ["ARCH_SPACES", "BUILTIN_PROXIES", "METANTK_ALGORITHMS", "POPULATION_INPUTS", "QUERY_PRECISIONS",
           "STRATEGIES", "proxy_plugins"]

ARCH_SPACES = ("nb201", "darts-fewshot")  # scoring.architectures.ARCH_SPACES
METANTK_ALGORITHMS = ("maml", "anil")  # proxies.metantk.MetaNTK's algorithms
STRATEGIES = ("auto", "loop", "vmap", "batched")  # fewshot.maml.STRATEGIES
QUERY_PRECISIONS = ("float32", "bfloat16")  # fewshot.maml.QUERY_PRECISIONS
BUILTIN_PROXIES = (  # proxies.available_proxies() without plugins
    "az_complexity", "az_expressivity", "az_progressivity", "az_trainability", "epe_nas", "fisher", "flops",
    "grad_norm", "gradsign", "grasp", "jacov", "l2_norm", "linear_regions", "meco", "meco_opt", "metantk",
    "metantk_anil", "ntk_cond", "nwot", "params", "plain", "snip", "swap", "swap_reg", "synflow", "zen", "zico",
)
POPULATION_INPUTS = {  # proxies.available_proxies("population"): their inputs
    "az_nas": ("az_expressivity", "az_progressivity", "az_trainability", "az_complexity"),
    "te_nas": ("ntk_cond", "linear_regions"),
}


def proxy_plugins() -> list[str]:
    """Names of the installed proxy plugins (entry points of ``metantk_plugin.proxies``), sorted; not loaded."""
    try:
        entry_points = metadata.entry_points(group="metantk_plugin.proxies")
    except TypeError:  # Python 3.9: entry_points() takes no arguments
        entry_points = metadata.entry_points().get("metantk_plugin.proxies", [])
    return sorted({ep.name for ep in entry_points})
