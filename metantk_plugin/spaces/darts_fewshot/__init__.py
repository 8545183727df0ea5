"""The few-shot DARTS search space of MetaNAS / MetaNTK-NAS: operations, supernet,
genotypes, the evaluation network and the official genotypes as presets."""

from __future__ import annotations

from metantk_plugin.spaces.darts_fewshot.eval_network import (
    DUMMY_ALPHA_PARAMETERS,
    DartsEvalNetwork,
    DropPath,
    build_eval_network,
    count_parameters,
)
from metantk_plugin.spaces.darts_fewshot.genotype import Genotype, parse_genotype, random_genotype
from metantk_plugin.spaces.darts_fewshot.operations import NORMS, OP_ALIASES, OP_NAMES, build_operation, make_norm
from metantk_plugin.spaces.darts_fewshot.presets import PRESETS, Preset, available_presets, get_preset, resolve_genotype
from metantk_plugin.spaces.darts_fewshot.supernet import (
    ACTIVE_THRESHOLD,
    CELL_TYPES,
    INF_ALPHA,
    DartsFewshotSupernet,
    active_operations,
    cell_layout,
    edge_groups,
    edge_keys,
    initial_alphas,
    linear_region_supernet,
)

__all__ = [
    "ACTIVE_THRESHOLD",
    "CELL_TYPES",
    "DUMMY_ALPHA_PARAMETERS",
    "INF_ALPHA",
    "NORMS",
    "OP_ALIASES",
    "OP_NAMES",
    "PRESETS",
    "DartsEvalNetwork",
    "DartsFewshotSupernet",
    "DropPath",
    "Genotype",
    "Preset",
    "active_operations",
    "available_presets",
    "build_eval_network",
    "build_operation",
    "cell_layout",
    "count_parameters",
    "edge_groups",
    "edge_keys",
    "get_preset",
    "initial_alphas",
    "linear_region_supernet",
    "make_norm",
    "parse_genotype",
    "random_genotype",
    "resolve_genotype",
]
