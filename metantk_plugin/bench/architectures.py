"""Which architectures a run scores, and how each becomes a network.

An architecture selection is ``all``, ``sample:N[:SEED]`` (the first N of a permutation
of the whole space drawn from SEED, default 0, so a smaller sample is a prefix of a
larger one with the same seed and a run can be extended by resuming it), or the path of
a text file with one architecture per line (an official string or an index; blank lines
and ``#`` comments are ignored). Architectures are identified by their official strings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from metantk_plugin.spaces.nasbench201 import NUM_ARCHITECTURES, all_architectures, build_network, parse_arch
from metantk_plugin.user_input import quoted, read_text_file

__all__ = ["build_architecture", "canonical_architecture", "select_architectures"]

_MAX_LIST_BYTES = 8_000_000  # every NAS-Bench-201 cell as a string, with comments, is under 2 MB


def canonical_architecture(space: str, arch) -> str:
    """The official string of ``arch`` (a string, an index, ...) in ``space``."""
    _check_space(space)
    return parse_arch(arch).to_string()


def build_architecture(space: str, arch: str, *, norm: str, channels: int, cells: int, num_classes: int,
                       in_channels: int, seed: int) -> nn.Module:
    """The network of ``arch`` returning ``(features, logits)``, its weights drawn from ``seed``."""
    _check_space(space)
    return build_network(arch, C=channels, N=cells, num_classes=num_classes, norm=norm,
                         in_channels=in_channels, seed=seed)


def select_architectures(space: str, selection: str) -> list[str]:
    """Official strings of the architectures named by ``selection`` (see the module docstring)."""
    _check_space(space)
    if not isinstance(selection, str) or not selection:
        raise ValueError(f"architecture selection must be 'all', 'sample:N[:SEED]' or a file, got {quoted(selection)}")
    if selection == "all":
        return [a.to_string() for a in all_architectures()]
    if selection.startswith("sample:"):
        return _sample(selection)
    path = Path(selection)
    if not path.is_file():
        raise ValueError(
            f"architecture selection {quoted(selection)} is not 'all', not 'sample:N[:SEED]' and not an existing file"
        )
    return _read_file(path)


def _sample(selection: str) -> list[str]:
    parts = selection.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        n = int(parts[1])
        seed = int(parts[2]) if len(parts) == 3 else 0
    except ValueError:
        raise ValueError(f"expected sample:N or sample:N:SEED with integers, got {quoted(selection)}") from None
    if not 1 <= n <= NUM_ARCHITECTURES or seed < 0:
        raise ValueError(f"sample size must be in 1..{NUM_ARCHITECTURES} and the seed >= 0, got {quoted(selection)}")
    order = np.random.default_rng(seed).permutation(NUM_ARCHITECTURES)[:n]
    strings = all_architectures()
    return [strings[i].to_string() for i in order]


def _read_file(path: Path) -> list[str]:
    archs: list[str] = []
    seen: set[str] = set()
    text = read_text_file(path, what="architecture list", limit=_MAX_LIST_BYTES)
    for number, line in enumerate(text.splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            arch = parse_arch(int(text) if text.lstrip("-").isdigit() else text).to_string()
        except ValueError as exc:
            raise ValueError(f"{path}, line {number}: {exc}") from None
        if arch not in seen:
            seen.add(arch)
            archs.append(arch)
    if not archs:
        raise ValueError(f"{path} lists no architecture")
    return archs


def _check_space(space: str) -> None:
    if space != "nb201":
        raise ValueError(f"unknown search space {quoted(space)}; expected nb201")
