"""Named genotypes: the 12 cells the official MetaNTK-NAS repository ships and MetaNAS's three.

``metantk-nas/<dataset>-<cells>cell-<k>`` are the "searched architecture examples" in
the comments of ``scripts/script_{mini,tiered}_{5,8}cell.sh`` (YiteWang/MetaNTK-NAS at
6f8bac0); the repository does not say which produced the paper's numbers.
``reference_params`` is the parameter count of the evaluation network (C = 48, the
preset's cells, 64 mini / 351 tiered classes) as the official ``count_params`` reports it
(including 20 dummy alpha parameters), in millions, from the reference's table.

``metanas/v1``, ``metanas/in-v2`` and ``metanas/og-v2`` are ``genotype_metanas_v1``,
``genotype_metanas_in_v2`` and ``genotype_metanas_og_v2`` of boschresearch/metanas
(``metanas/utils/genotypes.py``; pool names mapped to the ``...BN`` spelling). MetaNAS
trained them in its own macro-architecture (stem multiplier 3, no channel doubling, its
own layer counts), so they carry no cell count or parameter count here.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from metantk_plugin.spaces.darts_fewshot.genotype import Genotype, parse_genotype
from metantk_plugin.user_input import quoted

__all__ = ["PRESETS", "Preset", "available_presets", "get_preset", "resolve_genotype"]

_MINI, _TIERED = ("mini-imagenet", 64), ("tiered-imagenet", 351)
_METANTK_SOURCE = "YiteWang/MetaNTK-NAS 6f8bac0, scripts/script_{dataset}_{cells}cell.sh"
_METANAS_SOURCE = "boschresearch/metanas, metanas/utils/genotypes.py"


@dataclass(frozen=True)
class Preset:
    """A named genotype with where it comes from; ``cells`` and ``num_classes`` are the
    official evaluation setting (None where unknown)."""

    name: str
    genotype: Genotype
    cells: int | None
    dataset: str | None
    num_classes: int | None
    reference_params: float | None
    source: str


_OFFICIAL: list[tuple[str, tuple[str, int], int, float, list, list]] = [
    # (name, dataset, cells, reference M params, normal, reduce)
    (
        "mini-5cell-1",
        _MINI,
        5,
        1.761,
        [
            [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)],
            [("sep_conv_3x3", 1), ("sep_conv_3x3", 2)],
            [("conv_3x3", 0), ("sep_conv_3x3", 2)],
        ],
        [
            [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)],
            [("conv_1x5_5x1", 1), ("dil_conv_3x3", 2)],
            [("dil_conv_3x3", 2), ("dil_conv_3x3", 3)],
        ],
    ),
    (
        "mini-5cell-2",
        _MINI,
        5,
        2.222,
        [
            [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)],
            [("sep_conv_3x3", 1), ("sep_conv_3x3", 2)],
            [("conv_3x3", 2), ("sep_conv_3x3", 3)],
        ],
        [
            [("sep_conv_3x3", 0), ("dil_conv_3x3", 1)],
            [("conv_1x5_5x1", 1), ("sep_conv_3x3", 2)],
            [("sep_conv_3x3", 1), ("conv_1x5_5x1", 3)],
        ],
    ),
    (
        "mini-5cell-3",
        _MINI,
        5,
        1.344,
        [
            [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)],
            [("sep_conv_3x3", 0), ("max_pool_3x3BN", 2)],
            [("dil_conv_3x3", 2), ("sep_conv_3x3", 3)],
        ],
        [
            [("dil_conv_3x3", 0), ("sep_conv_3x3", 1)],
            [("conv_3x3", 1), ("sep_conv_3x3", 2)],
            [("sep_conv_3x3", 2), ("sep_conv_3x3", 3)],
        ],
    ),
    (
        "mini-8cell-1",
        _MINI,
        8,
        3.181,
        [
            [("sep_conv_3x3", 0), ("max_pool_3x3BN", 1)],
            [("conv_1x5_5x1", 0), ("sep_conv_3x3", 1)],
            [("sep_conv_3x3", 2), ("conv_3x3", 3)],
        ],
        [
            [("skip_connect", 0), ("sep_conv_3x3", 1)],
            [("conv_3x3", 1), ("sep_conv_3x3", 2)],
            [("dil_conv_3x3", 0), ("conv_1x5_5x1", 1)],
        ],
    ),
    (
        "mini-8cell-2",
        _MINI,
        8,
        2.967,
        [
            [("conv_3x3", 0), ("sep_conv_3x3", 1)],
            [("conv_1x5_5x1", 0), ("conv_3x3", 1)],
            [("sep_conv_3x3", 0), ("dil_conv_3x3", 2)],
        ],
        [
            [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)],
            [("sep_conv_3x3", 0), ("sep_conv_3x3", 2)],
            [("sep_conv_3x3", 0), ("sep_conv_3x3", 2)],
        ],
    ),
    (
        "mini-8cell-3",
        _MINI,
        8,
        3.489,
        [
            [("sep_conv_3x3", 0), ("conv_1x5_5x1", 1)],
            [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)],
            [("conv_3x3", 0), ("sep_conv_3x3", 1)],
        ],
        [
            [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)],
            [("conv_1x5_5x1", 1), ("sep_conv_3x3", 2)],
            [("conv_3x3", 0), ("sep_conv_3x3", 3)],
        ],
    ),
    (
        "tiered-5cell-1",
        _TIERED,
        5,
        2.186,
        [
            [("conv_3x3", 0), ("dil_conv_3x3", 1)],
            [("sep_conv_3x3", 1), ("sep_conv_3x3", 2)],
            [("sep_conv_3x3", 0), ("sep_conv_3x3", 3)],
        ],
        [
            [("skip_connect", 0), ("dil_conv_3x3", 1)],
            [("sep_conv_3x3", 0), ("conv_1x5_5x1", 2)],
            [("max_pool_3x3BN", 2), ("conv_1x5_5x1", 3)],
        ],
    ),
    (
        "tiered-5cell-2",
        _TIERED,
        5,
        1.820,
        [
            [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)],
            [("sep_conv_3x3", 1), ("max_pool_3x3BN", 2)],
            [("conv_3x3", 2), ("conv_3x3", 3)],
        ],
        [
            [("dil_conv_3x3", 0), ("conv_1x5_5x1", 1)],
            [("conv_3x3", 0), ("sep_conv_3x3", 1)],
            [("sep_conv_3x3", 2), ("sep_conv_3x3", 3)],
        ],
    ),
    (
        "tiered-5cell-3",
        _TIERED,
        5,
        2.665,
        [
            [("sep_conv_3x3", 0), ("conv_1x5_5x1", 1)],
            [("dil_conv_3x3", 0), ("sep_conv_3x3", 2)],
            [("sep_conv_3x3", 0), ("max_pool_3x3BN", 3)],
        ],
        [
            [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)],
            [("conv_1x5_5x1", 0), ("conv_1x5_5x1", 2)],
            [("dil_conv_3x3", 1), ("sep_conv_3x3", 3)],
        ],
    ),
    (
        "tiered-8cell-1",
        _TIERED,
        8,
        5.940,
        [
            [("conv_1x5_5x1", 0), ("sep_conv_3x3", 1)],
            [("conv_1x5_5x1", 0), ("conv_1x5_5x1", 1)],
            [("sep_conv_3x3", 0), ("conv_1x5_5x1", 2)],
        ],
        [
            [("skip_connect", 0), ("conv_3x3", 1)],
            [("conv_3x3", 0), ("conv_1x5_5x1", 1)],
            [("sep_conv_3x3", 0), ("sep_conv_3x3", 3)],
        ],
    ),
    (
        "tiered-8cell-2",
        _TIERED,
        8,
        3.138,
        [
            [("conv_1x5_5x1", 0), ("dil_conv_3x3", 1)],
            [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)],
            [("sep_conv_3x3", 0), ("conv_3x3", 2)],
        ],
        [
            [("conv_3x3", 0), ("sep_conv_3x3", 1)],
            [("sep_conv_3x3", 1), ("sep_conv_3x3", 2)],
            [("conv_3x3", 0), ("sep_conv_3x3", 1)],
        ],
    ),
    (
        "tiered-8cell-3",
        _TIERED,
        8,
        5.231,
        [
            [("conv_1x5_5x1", 0), ("conv_1x5_5x1", 1)],
            [("sep_conv_3x3", 0), ("conv_1x5_5x1", 2)],
            [("sep_conv_3x3", 2), ("sep_conv_3x3", 3)],
        ],
        [
            [("conv_3x3", 0), ("conv_3x3", 1)],
            [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)],
            [("sep_conv_3x3", 1), ("conv_1x5_5x1", 3)],
        ],
    ),
]

_METANAS: list[tuple[str, list, list]] = [
    (
        "v1",
        [
            [("conv_3x3", 0), ("conv_3x3", 1)],
            [("conv_1x5_5x1", 0), ("dil_conv_3x3", 2)],
            [("conv_1x5_5x1", 0), ("max_pool_3x3", 3)],
        ],
        [
            [("dil_conv_3x3", 0), ("sep_conv_3x3", 1)],
            [("conv_3x3", 0), ("max_pool_3x3", 1)],
            [("dil_conv_3x3", 2), ("conv_1x5_5x1", 3)],
        ],
    ),
    (
        "in-v2",
        [
            [("conv_1x5_5x1", 0), ("conv_3x3", 1)],
            [("conv_3x3", 0), ("sep_conv_3x3", 2)],
            [("dil_conv_3x3", 1), ("conv_1x5_5x1", 3)],
        ],
        [
            [("sep_conv_3x3", 0), ("conv_3x3", 1)],
            [("conv_3x3", 0), ("sep_conv_3x3", 2)],
            [("conv_3x3", 0), ("dil_conv_3x3", 1)],
        ],
    ),
    (
        "og-v2",
        [
            [("dil_conv_3x3", 0), ("sep_conv_3x3", 1)],
            [("avg_pool_3x3", 0), ("sep_conv_3x3", 1)],
            [("conv_1x5_5x1", 0), ("conv_3x3", 2)],
        ],
        [
            [("skip_connect", 0), ("sep_conv_3x3", 1)],
            [("conv_3x3", 0), ("dil_conv_3x3", 1)],
            [("dil_conv_3x3", 0), ("conv_1x5_5x1", 2)],
        ],
    ),
]


def _genotype(normal: list, reduce: list) -> Genotype:
    return Genotype(normal=normal, normal_concat=[2, 3, 4], reduce=reduce, reduce_concat=[2, 3, 4])


def _make_presets() -> dict[str, Preset]:
    presets = {}
    for short, (dataset, classes), cells, params, normal, reduce in _OFFICIAL:
        name = f"metantk-nas/{short}"
        source = _METANTK_SOURCE.format(dataset=dataset.split("-")[0], cells=cells)
        presets[name] = Preset(name, _genotype(normal, reduce), cells, dataset, classes, params, source)
    for short, normal, reduce in _METANAS:
        name = f"metanas/{short}"
        presets[name] = Preset(name, _genotype(normal, reduce), None, None, None, None, _METANAS_SOURCE)
    return presets


PRESETS: dict[str, Preset] = _make_presets()


def available_presets() -> list[str]:
    """The preset names, official MetaNTK-NAS cells first."""
    return list(PRESETS)


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ValueError naming the close matches otherwise."""
    if name in PRESETS:
        return PRESETS[name]
    close = difflib.get_close_matches(str(name), PRESETS, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown genotype preset {quoted(name)}.{hint} Available: {', '.join(PRESETS)}")


def resolve_genotype(value: Any) -> tuple[Genotype, Preset | None]:
    """A Genotype from a Genotype, a preset name, a MetaNAS ``Genotype(...)`` string, JSON
    text or a JSON dict; the preset too when ``value`` names one."""
    if isinstance(value, Genotype):
        return value, None
    if isinstance(value, dict):
        return Genotype.from_dict(value), None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("Genotype"):
            return parse_genotype(text), None
        if text.startswith("{"):
            return Genotype.from_json(text), None
        preset = get_preset(text)
        return preset.genotype, preset
    raise ValueError(
        f"expected a Genotype, a preset name, a 'Genotype(...)' string or a JSON dict, got {type(value).__name__}"
    )
