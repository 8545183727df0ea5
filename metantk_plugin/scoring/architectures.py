"""Which architectures a run scores or trains, and how each becomes a network.

Spaces: ``nb201`` (NAS-Bench-201 cells, identified by their official strings) and
``darts-fewshot`` (few-shot DARTS genotypes, identified by their MetaNAS ``Genotype(...)``
strings).

An architecture selection is

* ``all``: every NAS-Bench-201 cell (nb201 only; the DARTS space has about 10^9 genotypes);
* ``sample:N[:SEED]``: nb201, the first N of a permutation of the whole space drawn from
  SEED (default 0), so a smaller sample is a prefix of a larger one with the same seed and
  a run can be extended by resuming it; darts-fewshot, N uniformly random genotypes
  (:func:`~metantk_plugin.spaces.darts_fewshot.random_genotype` of seeds SEED*10^6 + i), which
  nest the same way;
* ``presets``: darts-fewshot, every preset genotype (the 12 official MetaNTK-NAS genotypes and
  the 3 of MetaNAS);
* the path of a text file with one architecture per line: an official string or an index
  (nb201), a genotype (``Genotype(...)`` on one line, JSON, or a preset name) or the path of
  a ``search.json`` written by ``metantk search`` (both); blank lines and ``#`` comments are
  ignored.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from metantk_plugin.spaces.nasbench201 import NUM_ARCHITECTURES, all_architectures, build_network, parse_arch
from metantk_plugin.user_input import quoted, read_text_file

__all__ = ["ARCH_SPACES", "build_architecture", "canonical_architecture", "read_search_result",
           "select_architectures"]

ARCH_SPACES = ("nb201", "darts-fewshot")
_MAX_LIST_BYTES = 8_000_000  # every NAS-Bench-201 cell as a string, with comments, is under 2 MB
_SAMPLE_SEED_STRIDE = 1_000_000


def canonical_architecture(space: str, arch) -> str:
    """The identifying string of ``arch`` in ``space``: the official NAS-Bench-201 string
    (from a string, an index, ...), or the MetaNAS string of a genotype (from a
    ``Genotype(...)`` string, JSON, or a preset name)."""
    _check_space(space)
    if space == "nb201":
        return parse_arch(arch).to_string()
    from metantk_plugin.spaces.darts_fewshot import resolve_genotype

    return str(resolve_genotype(arch)[0])


def build_architecture(space: str, arch: str, *, norm: str, channels: int, cells: int, num_classes: int,
                       in_channels: int, seed: int, image_size: int = 32) -> nn.Module:
    """The network of ``arch`` returning ``(features, logits)``, its weights drawn from ``seed``.

    nb201: the official network with ``channels`` = C and ``cells`` = N per stage;
    darts-fewshot: the evaluation network with ``channels`` = C and ``cells`` cells (3k+2)
    for ``image_size`` inputs."""
    _check_space(space)
    if space == "nb201":
        return build_network(arch, C=channels, N=cells, num_classes=num_classes, norm=norm,
                             in_channels=in_channels, seed=seed)
    from metantk_plugin.spaces.darts_fewshot import build_eval_network

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_eval_network(arch, num_classes, input_size=image_size, C=channels, cells=cells,
                                  input_channels=in_channels, norm=norm)


def select_architectures(space: str, selection: str) -> list[str]:
    """Identifying strings of the architectures named by ``selection`` (see the module docstring)."""
    _check_space(space)
    usage = ("'all', 'sample:N[:SEED]' or a file" if space == "nb201"
             else "'sample:N[:SEED]', 'presets' or a file")
    if not isinstance(selection, str) or not selection:
        raise ValueError(f"architecture selection must be {usage}, got {quoted(selection)}")
    if selection == "all":
        if space != "nb201":
            raise ValueError("'all' is not possible in the darts-fewshot space (about 10^9 genotypes); use "
                             "'sample:N[:SEED]', 'presets' or a file")
        return [a.to_string() for a in all_architectures()]
    if selection.startswith("sample:"):
        return _sample(space, selection)
    if selection == "presets" and space == "darts-fewshot":
        from metantk_plugin.spaces.darts_fewshot import available_presets

        return [canonical_architecture(space, name) for name in available_presets()]
    path = Path(selection)
    if not path.is_file():
        raise ValueError(f"architecture selection {quoted(selection)} is not {usage} naming an existing file")
    if path.suffix == ".json":
        return [read_search_result(path, space)]
    return _read_file(space, path)


def read_search_result(path: str | Path, space: str | None = None) -> str:
    """The architecture chosen in a ``search.json`` of ``metantk search`` (checked against
    ``space`` when given): an official NAS-Bench-201 string or a genotype string."""
    path = Path(path)
    try:
        report = json.loads(read_text_file(path, what="search result", limit=_MAX_LIST_BYTES))
        found = report["space"]
        arch = report["arch"] if found == "nb201" else report["genotype"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a search.json written by 'metantk search' ({exc})") from None
    if space is not None and found != space:
        raise ValueError(f"{path} holds a {found!r} architecture, but the {space!r} space was asked for")
    return canonical_architecture(found, arch)


def _sample(space: str, selection: str) -> list[str]:
    parts = selection.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        n = int(parts[1])
        seed = int(parts[2]) if len(parts) == 3 else 0
    except ValueError:
        raise ValueError(f"expected sample:N or sample:N:SEED with integers, got {quoted(selection)}") from None
    limit = NUM_ARCHITECTURES if space == "nb201" else _SAMPLE_SEED_STRIDE
    if not 1 <= n <= limit or seed < 0:
        raise ValueError(f"sample size must be in 1..{limit} and the seed >= 0, got {quoted(selection)}")
    if space == "darts-fewshot":
        from metantk_plugin.spaces.darts_fewshot import random_genotype

        return list(dict.fromkeys(str(random_genotype(seed * _SAMPLE_SEED_STRIDE + i)) for i in range(n)))
    order = np.random.default_rng(seed).permutation(NUM_ARCHITECTURES)[:n]
    strings = all_architectures()
    return [strings[i].to_string() for i in order]


def _read_file(space: str, path: Path) -> list[str]:
    archs: list[str] = []
    lines = read_text_file(path, what="architecture list", limit=_MAX_LIST_BYTES).splitlines()
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            if text.endswith(".json") and Path(text).is_file():
                arch = read_search_result(text, space)
            elif space == "nb201" and text.lstrip("-").isdigit():
                arch = canonical_architecture(space, int(text))
            else:
                arch = canonical_architecture(space, text)
        except ValueError as exc:
            raise ValueError(f"{path}, line {number}: {exc}") from None
        archs.append(arch)
    if not archs:
        raise ValueError(f"{path} lists no architecture")
    return list(dict.fromkeys(archs))


def _check_space(space: str) -> None:
    if space not in ARCH_SPACES:
        raise ValueError(f"unknown search space {quoted(space)}; expected one of {', '.join(ARCH_SPACES)}")
