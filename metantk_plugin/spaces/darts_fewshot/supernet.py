"""The few-shot DARTS supernet pruned by MetaNTK-NAS (the official ``NASNetworkDARTS``).

Layout (``N = (cells - 2) / 3``, feature scale rate 2): a stem Conv3x3 + norm, then
cells with channels ``[C]*N + [2C] + [2C]*N + [4C] + [4C]*N`` and reductions at
positions N and 2N+1 (5 cells: 1, 3; 8 cells: 2, 5), then norm -> ReLU -> global
average pooling -> Linear. ``forward`` returns ``(features [N, multiplier*4C], logits)``.

Each cell has ``steps`` intermediate nodes; node i sums one mixed edge from each of
the 2 + i earlier states (9 edges for 3 nodes). Edge keys ``'i<-j'`` are sorted as
strings to give the alpha rows. The architecture logits ``alpha_normal`` and
``alpha_reduce`` ``[edges, 8]`` are buffers, never parameters, so they take no part in
autograd or in the NTK. With ``w = softmax(alpha)`` over the 8 operations, an edge
computes ``Σ_{o: w_o > 0.01} w_o · op_o(x)``; operations at or below the threshold are
not run at all, and an edge whose logits are all -1000 contributes 0. Removing an
operation (alpha = -1000) therefore re-weights the others: k equal survivors get 1/k.
"""

from __future__ import annotations

import torch
from torch import nn

from metantk_plugin.spaces.darts_fewshot.genotype import Genotype
from metantk_plugin.spaces.darts_fewshot.operations import (
    NORMS,
    OP_NAMES,
    FactorizedReduce,
    LeadingReLU,
    ReLUConvNorm,
    build_operation,
    make_norm,
)
from metantk_plugin.spaces.mixed_edges import ACTIVE_THRESHOLD, INF_ALPHA, active_operations, mixing_plan
from metantk_plugin.task_spec import check_positive_int

__all__ = [
    "ACTIVE_THRESHOLD",
    "CELL_TYPES",
    "INF_ALPHA",
    "DartsFewshotSupernet",
    "active_operations",
    "cell_layout",
    "edge_groups",
    "edge_keys",
    "initial_alphas",
    "linear_region_supernet",
]

CELL_TYPES = ("normal", "reduce")
_NONE = OP_NAMES.index("none")


def edge_keys(steps: int = 3) -> list[str]:
    """The edge keys ``'i<-j'`` (node i, source state j) sorted as strings: the alpha row order."""
    return sorted(f"{i}<-{j}" for i in range(steps) for j in range(i + 2))


def edge_groups(steps: int = 3) -> list[tuple[int, int]]:
    """Half-open alpha-row ranges of the edges that feed each node: [(0, 2), (2, 5), (5, 9)] for 3."""
    groups, start = [], 0
    for i in range(steps):
        groups.append((start, start + i + 2))
        start += i + 2
    return groups


def initial_alphas(steps: int = 3) -> torch.Tensor:
    """The search's starting logits ``[edges, 8]``: 0 everywhere and -1000 for 'none'."""
    alpha = torch.zeros(len(edge_keys(steps)), len(OP_NAMES))
    alpha[:, _NONE] = -INF_ALPHA
    return alpha


def cell_layout(cells: int, C: int, feature_scale_rate: int = 2) -> list[tuple[int, bool]]:
    """``(channels, is_reduction)`` per cell of the official layout; ``cells`` must be 3N+2."""
    if not isinstance(cells, int) or cells < 2 or (cells - 2) % 3:
        raise ValueError(
            f"cells must be 3N+2 (2, 5, 8, 11, ...), got {cells!r}: the official layout puts N normal "
            "cells before, between and after the two reduction cells; use depth= to keep only the first cells"
        )
    n = (cells - 2) // 3
    fsr = feature_scale_rate
    return (
        [(C, False)] * n + [(C * fsr, True)] + [(C * fsr, False)] * n + [(C * fsr**2, True)] + [(C * fsr**2, False)] * n
    )


class _SearchCell(nn.Module):
    """A cell whose every edge holds all 8 operations."""

    def __init__(
        self, steps: int, multiplier: int, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool, norm: str
    ):
        super().__init__()
        self.reduction = reduction
        self.steps = steps
        self.multiplier = multiplier
        self.channels = c
        self.preprocess0 = FactorizedReduce(c_pp, c, norm) if reduction_prev else ReLUConvNorm(c_pp, c, 1, 1, 0, norm)
        self.preprocess1 = ReLUConvNorm(c_p, c, 1, 1, 0, norm)
        self.input_relu = nn.ReLU(inplace=False)
        self.edges = nn.ModuleDict()
        for i in range(steps):
            for j in range(i + 2):
                stride = 2 if reduction and j < 2 else 1
                self.edges[f"{i}<-{j}"] = nn.ModuleList(build_operation(op, c, stride, norm) for op in OP_NAMES)
        self._rows = {key: row for row, key in enumerate(edge_keys(steps))}

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, plan: list[list[tuple[int, torch.Tensor]]]) -> torch.Tensor:
        """Each node sums its edges' weighted operations; the operations that start with a
        ReLU (:class:`LeadingReLU`) share one ``input_relu`` of their state, taken once, and
        run as ``after_relu`` (so their own forward hooks do not fire here; their layers' do)."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        rectified: dict[int, torch.Tensor] = {}
        for i in range(self.steps):
            node = None
            for j, state in enumerate(states):
                key = f"{i}<-{j}"
                ops = self.edges[key]
                for o, w in plan[self._rows[key]]:
                    if o == _NONE:  # contributes w * 0
                        continue
                    if isinstance(ops[o], LeadingReLU):
                        if j not in rectified:
                            rectified[j] = self.input_relu(state)
                        out = ops[o].after_relu(rectified[j])
                    else:
                        out = ops[o](state)
                    term = w * out
                    node = term if node is None else node + term
            states.append(self._zeros_like_node(states[1]) if node is None else node)
        return torch.cat(states[-self.multiplier :], dim=1)

    def _zeros_like_node(self, s1: torch.Tensor) -> torch.Tensor:
        n, _, h, w = s1.shape
        if self.reduction:
            h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
        return s1.new_zeros(n, self.channels, h, w)


class DartsFewshotSupernet(nn.Module):
    """The MetaNTK-NAS supernet over the 8 few-shot DARTS operations.

    ``norm='group'`` (GroupNorm(min(16, C), C), the official groupnorm16) keeps samples
    independent for kernels; ``'batch'`` is the unconverted official network; ``'none'``
    drops normalisation. ``depth`` keeps only the first cells of the layout (the
    linear-region network uses ``cells=5, depth=2``). Without a stem the input must have
    ``input_channels`` channels and goes straight into the first cell.

    Input ``[N, input_channels, H, W]``; output ``(features [N, multiplier * C_last], logits [N, num_classes])``.
    """

    def __init__(
        self,
        C: int = 48,
        cells: int = 5,
        steps: int = 3,
        multiplier: int = 3,
        stem_multiplier: int = 1,
        num_classes: int = 64,
        norm: str = "group",
        use_stem: bool = True,
        input_channels: int = 3,
        *,
        feature_scale_rate: int = 2,
        depth: int | None = None,
    ):
        super().__init__()
        for name, value in (
            ("C", C),
            ("steps", steps),
            ("multiplier", multiplier),
            ("stem_multiplier", stem_multiplier),
            ("num_classes", num_classes),
            ("input_channels", input_channels),
            ("feature_scale_rate", feature_scale_rate),
        ):
            check_positive_int(name, value)
        if multiplier > steps:
            raise ValueError(
                f"multiplier ({multiplier}) cannot exceed steps ({steps}): the cell concatenates its last nodes"
            )
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")
        layout = cell_layout(cells, C, feature_scale_rate)
        if depth is not None:
            if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= len(layout):
                raise ValueError(f"depth must be an int in 1..{len(layout)} for cells={cells}, got {depth!r}")
            layout = layout[:depth]
        self.C, self.num_cells, self.steps, self.multiplier = C, len(layout), steps, multiplier
        self.norm, self.use_stem, self.input_channels = norm, use_stem, input_channels
        self.op_names = OP_NAMES
        self.edge_keys = edge_keys(steps)
        self.edge_groups = edge_groups(steps)

        if use_stem:
            c_stem = C * stem_multiplier
            self.stem = nn.Sequential(
                nn.Conv2d(input_channels, c_stem, 3, padding=1, bias=False), make_norm(norm, c_stem)
            )
            c_pp = c_p = c_stem
        else:
            self.stem = None
            c_pp = c_p = input_channels
        self.cells = nn.ModuleList()
        reduction_prev = False
        for c, reduction in layout:
            self.cells.append(_SearchCell(steps, multiplier, c_pp, c_p, c, reduction, reduction_prev, norm))
            c_pp, c_p, reduction_prev = c_p, multiplier * c, reduction
        self.feature_dim = c_p
        self.lastact = nn.Sequential(make_norm(norm, c_p), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        self.register_buffer("alpha_normal", initial_alphas(steps))
        self.register_buffer("alpha_reduce", initial_alphas(steps))

    # ------------------------------------------------------------------ architecture
    def set_alphas(self, normal: torch.Tensor, reduce: torch.Tensor) -> None:
        """Replace the architecture logits (each ``[edges, 8]``); -1000 removes an operation."""
        for name, value in (("normal", normal), ("reduce", reduce)):
            value = torch.as_tensor(value)
            buffer = getattr(self, f"alpha_{name}")
            if value.shape != buffer.shape:
                raise ValueError(
                    f"alpha for the {name} cell must have shape {tuple(buffer.shape)} (edges x ops), "
                    f"got {tuple(value.shape)}"
                )
            if not torch.isfinite(value).all():
                raise ValueError(f"alpha for the {name} cell must be finite (use -1000 to remove an operation)")
            buffer.copy_(value.detach())

    def alphas(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Copies of ``(alpha_normal, alpha_reduce)``."""
        return self.alpha_normal.clone(), self.alpha_reduce.clone()

    def genotype(self) -> Genotype:
        """The discrete cell (official rule): per node, the 2 incoming edges with the largest
        non-'none' softmax weight, each with its arg-max non-'none' operation (ties: lower index)."""
        concat = list(range(2 + self.steps - self.multiplier, self.steps + 2))
        cells = {name: self._parse(getattr(self, f"alpha_{name}")) for name in CELL_TYPES}
        return Genotype(normal=cells["normal"], normal_concat=concat, reduce=cells["reduce"], reduce_concat=concat)

    def _parse(self, alpha: torch.Tensor) -> list[list[tuple[str, int]]]:
        weights = torch.softmax(alpha.detach(), dim=-1).tolist()  # in the buffer's dtype, as the official code
        candidates = [o for o in range(len(OP_NAMES)) if o != _NONE]
        gene = []
        for start, end in self.edge_groups:
            rows = weights[start:end]
            chosen = sorted(range(end - start), key=lambda j: -max(rows[j][o] for o in candidates))[:2]
            gene.append([(OP_NAMES[max(candidates, key=lambda o: (rows[j][o], -o))], j) for j in chosen])
        return gene

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.input_channels:
            raise ValueError(
                f"expected an image batch [N, {self.input_channels}, H, W], got {tuple(getattr(x, 'shape', ()))}"
            )
        plans = {name: mixing_plan(getattr(self, f"alpha_{name}")) for name in CELL_TYPES}
        s0 = s1 = self.stem(x) if self.stem is not None else x
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, plans["reduce" if cell.reduction else "normal"])
        features = self.global_pooling(self.lastact(s1)).flatten(1)
        return features, self.classifier(features)


def linear_region_supernet(num_classes: int = 64) -> DartsFewshotSupernet:
    """The thin network whose ReLU patterns are counted (official B.4): C = 1, a normal
    cell (C = 1) then a reduction cell (C = 2), no stem, 1-channel input, BatchNorm
    (left in training mode: batch statistics)."""
    return DartsFewshotSupernet(
        C=1, cells=5, num_classes=num_classes, norm="batch", use_stem=False, input_channels=1, depth=2
    )
