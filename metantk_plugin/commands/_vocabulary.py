"""The names the parsers offer (choices, and the lists in their help), written out here so
that ``metantk --help`` and ``metantk COMMAND --help`` import neither torch nor the proxies.
Each is the constant named in its comment; ``tests/test_cli_help.py`` checks that they agree."""

from __future__ import annotations

from importlib import metadata

__all__ = [
    "ARCH_SPACES",
    "BUILTIN_PROXIES",
    "CSV_ENV_VAR",
    "DTYPES",
    "EPOCHS",
    "EXECUTORS",
    "INDICATORS",
    "KERNEL_PROXIES",
    "NETWORK_NORMS",
    "POPULATION_INPUTS",
    "SEARCH_SPACES",
    "SPACES",
    "SPLITS",
    "proxy_plugins",
]

ARCH_SPACES = ("nb201", "darts-fewshot")  # scoring.architectures.ARCH_SPACES
SPACES = ("nb201",)  # scoring.settings.SPACES
SEARCH_SPACES = ("darts-fewshot", "nb201")  # sorted(search.spaces.SEARCH_SPACES)
INDICATORS = ("metantk", "ntk", "regions")  # search.pruning.INDICATORS
EXECUTORS = ("local", "processes", "ray")  # scoring.executors.EXECUTORS
DTYPES = ("float32", "float64")  # scoring.settings.DTYPES
NETWORK_NORMS = ("batch", "group", "none")  # scoring.settings.NETWORK_NORMS
KERNEL_PROXIES = ("metantk", "metantk_anil", "ntk_cond", "linear_regions")  # scoring.settings.KERNEL_PROXIES
BUILTIN_PROXIES = (  # proxies.available_proxies() without plugins
    "epe_nas", "fisher", "flops", "grad_norm", "grasp", "jacov", "l2_norm", "linear_regions", "metantk",
    "metantk_anil", "ntk_cond", "nwot", "params", "plain", "snip", "synflow", "zen",
)
POPULATION_INPUTS = {"te_nas": ("ntk_cond", "linear_regions")}  # proxies.population.POPULATION_PROXIES: inputs
SPLITS = ("valid", "test")  # spaces.nasbench201.SPLITS
EPOCHS = (12, 200)  # spaces.nasbench201.EPOCHS
CSV_ENV_VAR = "METANTK_NB201_CSV"  # spaces.nasbench201.ground_truth.CSV_ENV_VAR


def proxy_plugins() -> list[str]:
    """Names of the installed proxy plugins (entry points of ``metantk_plugin.proxies``), sorted; not loaded."""
    try:
        entry_points = metadata.entry_points(group="metantk_plugin.proxies")
    except TypeError:  # Python 3.9: entry_points() takes no arguments
        entry_points = metadata.entry_points().get("metantk_plugin.proxies", [])
    return sorted({ep.name for ep in entry_points})
