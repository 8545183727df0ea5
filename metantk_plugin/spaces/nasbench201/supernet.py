"""The NAS-Bench-201 supernet pruned by MetaNTK-NAS / TE-NAS.

The official network (see :mod:`.network`) with every edge of the (shared) cell a
mixture of the 5 operations, weighted by ``softmax(alpha)`` with ``alpha [6, 5]`` a
buffer (never a parameter, so it is not in the NTK); see
:mod:`metantk_plugin.spaces.mixed_edges` for the masking semantics. Edge rows follow
the official edge order, operation columns :data:`.codec.OPERATIONS`.

The region-counting network is the thin version: no stem, 1-channel input, one cell
at C=1 followed by the residual reduction to C=2, BatchNorm (batch statistics).
"""

from __future__ import annotations

import torch
from torch import nn

from metantk_plugin.spaces.mixed_edges import mixing_plan
from metantk_plugin.spaces.nasbench201.codec import EDGES, OPERATIONS
from metantk_plugin.spaces.nasbench201.network import NORMS, _norm_layer, _operation, _ResidualReduction
from metantk_plugin.task_spec import check_positive_int

__all__ = ["NB201Supernet"]


class _MixedCell(nn.Module):
    """``node_j = Σ_{i<j} Σ_o w[e(i,j), o] · op_o(node_i)`` over the running operations."""

    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.edges = nn.ModuleList(nn.ModuleList(_operation(op, channels, norm) for op in OPERATIONS) for _ in EDGES)

    def forward(self, x: torch.Tensor, plan: list[list[tuple[int, torch.Tensor]]]) -> torch.Tensor:
        nodes = [x]
        for target in (1, 2, 3):
            node = torch.zeros_like(x)
            for e, (source, end) in enumerate(EDGES):
                if end == target:
                    for o, w in plan[e]:
                        node = node + w * self.edges[e][o](nodes[source])
            nodes.append(node)
        return nodes[3]


class NB201Supernet(nn.Module):
    """Stem (optional) -> N mixed cells at C -> reduction -> N at 2C -> reduction -> N at 4C
    -> norm, ReLU -> pool -> linear; ``depth`` keeps only the first cells/reductions.
    ``forward(x [B, in_channels, H, W])`` returns ``(features, logits)``."""

    def __init__(self, C: int = 16, N: int = 5, num_classes: int = 10, norm: str = "group", *,
                 in_channels: int = 3, use_stem: bool = True, depth: int | None = None):
        super().__init__()
        for name, value in (("C", C), ("N", N), ("num_classes", num_classes), ("in_channels", in_channels)):
            check_positive_int(name, value)
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")
        self.in_channels = in_channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), _norm_layer(norm, C)) \
            if use_stem else None
        if not use_stem and in_channels != C:
            raise ValueError(f"without a stem the input channels ({in_channels}) must equal C ({C})")
        layers: list[tuple[nn.Module, int]] = []  # (layer, channels after it)
        channels = C
        for stage in range(3):
            if stage:
                layers.append((_ResidualReduction(channels, 2 * channels, norm), 2 * channels))
                channels *= 2
            layers.extend((_MixedCell(channels, norm), channels) for _ in range(N))
        if depth is not None:
            if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= len(layers):
                raise ValueError(f"depth must be an int in 1..{len(layers)}, got {depth!r}")
            layers = layers[:depth]
        channels = layers[-1][1]
        self.cells = nn.ModuleList(layer for layer, _ in layers)
        self.lastact = nn.Sequential(_norm_layer(norm, channels), nn.ReLU())
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        self.register_buffer("alpha", torch.zeros(len(EDGES), len(OPERATIONS)))

    def set_alphas(self, alpha: torch.Tensor) -> None:
        """Replace the cell's logits ``[6, 5]``; -1000 removes an operation."""
        alpha = torch.as_tensor(alpha)
        if alpha.shape != self.alpha.shape or not torch.isfinite(alpha).all():
            raise ValueError(f"alpha must be a finite [6, 5] tensor (edges x ops), got {tuple(alpha.shape)}")
        self.alpha.copy_(alpha)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected images [batch, {self.in_channels}, H, W], got {tuple(getattr(x, 'shape', ()))}")
        plan = mixing_plan(self.alpha)
        out = self.stem(x) if self.stem is not None else x
        for layer in self.cells:
            out = layer(out, plan) if isinstance(layer, _MixedCell) else layer(out)
        features = self.global_pooling(self.lastact(out)).flatten(1)
        return features, self.classifier(features)
