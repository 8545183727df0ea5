"""NAS-Bench-201 as seen by the pruning search (TE-NAS's setting with MetaNTK)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from metantk_plugin.search.space import PrunableSpace
from metantk_plugin.spaces.nasbench201 import EDGES, OPERATIONS, NB201Arch
from metantk_plugin.spaces.nasbench201.supernet import NB201Supernet

__all__ = ["NB201SearchSpace"]


class NB201SearchSpace(PrunableSpace):
    """One shared cell of 6 edges x 5 operations ('none' is a candidate, as in TE-NAS);
    kernel net: the GroupNorm supernet with ``channels`` and ``cells`` per stage; region
    net: the thin supernet (no stem, C=1, cell + reduction, 1-channel 3x3 crops)."""

    name = "nb201"
    cell_types = ("cell",)
    op_names = OPERATIONS
    n_edges = len(EDGES)
    edge_groups = ()

    def __init__(self, *, channels: int = 16, cells: int = 1, num_classes: int = 10, norm: str = "group"):
        self.channels, self.cells, self.num_classes, self.norm = channels, cells, num_classes, norm
        NB201Supernet(C=channels, N=cells, num_classes=num_classes, norm=norm)  # validates early

    def initial_alphas(self) -> dict[str, torch.Tensor]:
        return {"cell": torch.zeros(len(EDGES), len(OPERATIONS))}

    def kernel_network(self, alphas: dict[str, torch.Tensor]) -> nn.Module:
        net = NB201Supernet(C=self.channels, N=self.cells, num_classes=self.num_classes, norm=self.norm)
        self.apply_alphas(net, alphas)
        return net

    def region_network(self, alphas: dict[str, torch.Tensor]) -> nn.Module:
        net = NB201Supernet(C=1, N=1, num_classes=self.num_classes, norm="batch", in_channels=1, use_stem=False,
                            depth=2)
        self.apply_alphas(net, alphas)
        return net

    def apply_alphas(self, network: nn.Module, alphas: dict[str, torch.Tensor]) -> None:
        network.set_alphas(alphas["cell"])

    def describe(self, alphas: dict[str, torch.Tensor]) -> dict[str, Any]:
        ops = tuple(OPERATIONS[int(torch.argmax(row))] for row in alphas["cell"])
        arch = NB201Arch(ops)
        return {"arch": arch.to_string(), "index": arch.index}
