"""The search spaces the pruning search runs on, by name, with their default supernet size
(imports no torch until a space is built)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from metantk_plugin.search.space import PrunableSpace

__all__ = ["SEARCH_SPACES", "build_search_space", "supernet_size"]

SEARCH_SPACES: dict[str, tuple[int, int]] = {
    "nb201": (16, 1),
    "darts-fewshot": (16, 5),
}
"""Name -> default (channels C, cells) of the supernet: small enough for a laptop CPU in minutes."""


def supernet_size(space: str, channels: int | None = None, cells: int | None = None) -> tuple[int, int]:
    """(channels, cells) of ``space``'s supernet: the values given, else the space's defaults."""
    try:
        default_channels, default_cells = SEARCH_SPACES[space]
    except KeyError:
        raise ValueError(f"unknown search space {space!r}; available: {', '.join(SEARCH_SPACES)}") from None
    return (default_channels if channels is None else channels, default_cells if cells is None else cells)


def build_search_space(space: str, channels: int | None = None, cells: int | None = None) -> PrunableSpace:
    """The search space ``space`` with a supernet of :func:`supernet_size`."""
    channels, cells = supernet_size(space, channels, cells)
    if space == "nb201":
        from metantk_plugin.search.nb201_space import NB201SearchSpace

        return NB201SearchSpace(channels=channels, cells=cells)
    from metantk_plugin.search.darts_space import DartsFewshotSearchSpace

    return DartsFewshotSearchSpace(channels=channels, cells=cells)
