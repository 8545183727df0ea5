"""What the pruning search needs from a search space.

A space is a cell of ``n_edges`` edges, each a mixture of ``op_names`` weighted by
``softmax(alpha[cell_type][edge])``; an operation is active while its weight exceeds
0.01 and removed by setting its alpha to :data:`REMOVED` (-1000). The space builds two
supernets conditioned on alphas: the kernel network (scored with MetaNTK or the NTK)
and the small region network (whose ReLU patterns are counted).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

from metantk_plugin.spaces.mixed_edges import INF_ALPHA

__all__ = ["REMOVED", "PrunableSpace"]

REMOVED = -INF_ALPHA
"""The logit that removes an operation."""


class PrunableSpace(ABC):
    """A cell search space the operator-pruning search can drive."""

    name: str
    cell_types: tuple[str, ...]
    op_names: tuple[str, ...]
    n_edges: int
    edge_groups: tuple[tuple[int, int], ...] = ()
    """Edges feeding one node, ``[start, stop)``; phase 2 keeps 2 per group (empty: no phase 2)."""

    @abstractmethod
    def initial_alphas(self) -> dict[str, torch.Tensor]:
        """``{cell_type: [n_edges, n_ops]}``, 0 for candidate operations, REMOVED for masked ones."""

    @abstractmethod
    def kernel_network(self, alphas: dict[str, torch.Tensor]) -> nn.Module:
        """A fresh, default-initialised supernet for kernels (sample-independent norms),
        returning (features, logits)."""

    @abstractmethod
    def region_network(self, alphas: dict[str, torch.Tensor]) -> nn.Module:
        """A fresh, default-initialised thin supernet for region counting (1-channel 3x3 input)."""

    @abstractmethod
    def apply_alphas(self, network: nn.Module, alphas: dict[str, torch.Tensor]) -> None:
        """Condition an existing supernet (kernel or region) on ``alphas``."""

    @abstractmethod
    def describe(self, alphas: dict[str, torch.Tensor]) -> dict[str, Any]:
        """The architecture the final alphas select, as JSON-ready fields."""
