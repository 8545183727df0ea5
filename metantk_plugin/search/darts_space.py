"""The few-shot DARTS space as seen by the pruning search (official settings, B.3-B.4)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from metantk_plugin.search.space import PrunableSpace
from metantk_plugin.spaces.darts_fewshot import (
    CELL_TYPES,
    OP_NAMES,
    DartsFewshotSupernet,
    edge_groups,
    edge_keys,
    initial_alphas,
    linear_region_supernet,
)

__all__ = ["DartsFewshotSearchSpace"]


class DartsFewshotSearchSpace(PrunableSpace):
    """Kernel net: the GroupNorm supernet with ``channels`` (48) and ``cells`` (5 or 8);
    region net: the thin C=1, 2-cell BatchNorm supernet on 1-channel 3x3 crops."""

    name = "darts-fewshot"
    cell_types = CELL_TYPES
    op_names = OP_NAMES

    def __init__(self, *, channels: int = 48, cells: int = 5, num_classes: int = 64, norm: str = "group"):
        self.channels, self.cells, self.num_classes, self.norm = channels, cells, num_classes, norm
        self.n_edges = len(edge_keys())
        self.edge_groups = tuple(edge_groups())
        DartsFewshotSupernet(C=channels, cells=cells, num_classes=num_classes, norm=norm)  # validates early

    def initial_alphas(self) -> dict[str, torch.Tensor]:
        return {cell: initial_alphas() for cell in self.cell_types}

    def kernel_network(self, alphas: dict[str, torch.Tensor]) -> nn.Module:
        """The supernet with its convolution weights in channels_last format, so that its
        activations follow (oneDNN runs its depthwise and 1x5/5x1 convolutions faster in it:
        1.13x per MetaNTK score at C=48, 5 cells, on 2 CPU cores: ``gram_cl`` in ``benchmarks/speed.py``)."""
        net = DartsFewshotSupernet(C=self.channels, cells=self.cells, num_classes=self.num_classes, norm=self.norm)
        self.apply_alphas(net, alphas)
        return net.to(memory_format=torch.channels_last)

    def region_network(self, alphas: dict[str, torch.Tensor]) -> nn.Module:
        net = linear_region_supernet(self.num_classes)
        self.apply_alphas(net, alphas)
        return net

    def apply_alphas(self, network: nn.Module, alphas: dict[str, torch.Tensor]) -> None:
        network.set_alphas(alphas["normal"], alphas["reduce"])

    def describe(self, alphas: dict[str, torch.Tensor]) -> dict[str, Any]:
        net = linear_region_supernet(self.num_classes)
        self.apply_alphas(net, alphas)
        genotype = net.genotype()
        return {"genotype": str(genotype), "genotype_json": genotype.to_dict()}
