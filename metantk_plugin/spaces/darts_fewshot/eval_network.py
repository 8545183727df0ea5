"""The evaluation network built from a genotype (the official ``AugmentCNN`` of MetaNAS).

Stem Conv3x3(input_channels -> stem_multiplier*C, pad 1, no bias) + norm; ``cells``
cells with reductions at ``cells // 3`` and ``2 * cells // 3`` (channels doubled there);
cell inputs preprocessed by FactorizedReduce after a reduction cell, else ReLU-Conv1x1-norm;
each node sums its two genotype operations, each followed (except the identity) by
drop-path; the cell concatenates its ``concat`` nodes. Then global average pooling and
``Linear(len(concat) * 4C, num_classes)`` with no final norm or ReLU (576 features for
C = 48). ``forward`` returns ``(features [N, 576], logits [N, num_classes])``; the
official input is 84x84.
"""

from __future__ import annotations

import torch
from torch import nn

from metantk_plugin.spaces.darts_fewshot.genotype import Genotype
from metantk_plugin.spaces.darts_fewshot.operations import (
    NORMS,
    FactorizedReduce,
    ReLUConvNorm,
    build_operation,
    make_norm,
)
from metantk_plugin.spaces.darts_fewshot.presets import resolve_genotype
from metantk_plugin.task_spec import check_positive_int

__all__ = ["DUMMY_ALPHA_PARAMETERS", "DartsEvalNetwork", "DropPath", "build_eval_network", "count_parameters"]

DUMMY_ALPHA_PARAMETERS = 20
"""Parameters the official AugmentCNN registers but never uses: 2 normal and 2 reduce
alphas of shape [1, 5]. Its ``count_params`` (and the reference table) includes them."""

_DEFAULT_CELLS = 5


class DropPath(nn.Module):
    """Per-sample path dropping: ``y = x * m / (1 - p)`` with ``m ~ Bernoulli(1 - p)`` drawn
    per sample (``[N, 1, 1, 1]``) from ``generator``; identity in eval mode or when p = 0."""

    def __init__(self, p: float = 0.0, generator: torch.Generator | None = None):
        super().__init__()
        self.p = _check_drop_prob(p)
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(
            keep, generator=self.generator
        )
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _check_drop_prob(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"drop_path probability must be a number in [0, 1), got {p!r}")
    return float(p)


class _EvalCell(nn.Module):
    def __init__(
        self, genotype: Genotype, c_pp: int, c_p: int, c: int, reduction_prev: bool, reduction: bool, norm: str
    ):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = FactorizedReduce(c_pp, c, norm) if reduction_prev else ReLUConvNorm(c_pp, c, 1, 1, 0, norm)
        self.preprocess1 = ReLUConvNorm(c_p, c, 1, 1, 0, norm)
        self.concat = list(genotype.concat(reduction))
        self.sources: list[list[int]] = []
        self.nodes = nn.ModuleList()
        for inputs in genotype.cell(reduction):
            ops = nn.ModuleList()
            for op_name, src in inputs:
                op = build_operation(op_name, c, 2 if reduction and src < 2 else 1, norm)
                ops.append(op if isinstance(op, nn.Identity) else nn.Sequential(op, DropPath()))
            self.nodes.append(ops)
            self.sources.append([src for _, src in inputs])

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for ops, sources in zip(self.nodes, self.sources):
            node = ops[0](states[sources[0]])
            for op, src in zip(ops[1:], sources[1:]):
                node = node + op(states[src])
            states.append(node)
        return torch.cat([states[i] for i in self.concat], dim=1)


class DartsEvalNetwork(nn.Module):
    """A discrete network from ``genotype`` (see the module docstring). ``norm='batch'`` is
    the official network; 'group' (GroupNorm16) suits kernel computations.

    Input ``[N, input_channels, H, W]`` (``input_size`` = H = W is the size it is meant for);
    output ``(features [N, feature_dim], logits [N, num_classes])``."""

    head_name = "classifier"
    """The linear head: ``logits = classifier(features)`` (what ANIL adapts)."""

    def __init__(
        self,
        genotype: Genotype,
        num_classes: int,
        *,
        C: int = 48,
        cells: int = _DEFAULT_CELLS,
        input_channels: int = 3,
        input_size: int = 84,
        stem_multiplier: int = 1,
        feature_scale_rate: int = 2,
        drop_path: float = 0.0,
        norm: str = "batch",
    ):
        super().__init__()
        if not isinstance(genotype, Genotype):
            raise ValueError(f"genotype must be a Genotype, got {type(genotype).__name__}")
        for name, value in (
            ("num_classes", num_classes),
            ("C", C),
            ("cells", cells),
            ("input_channels", input_channels),
            ("input_size", input_size),
            ("stem_multiplier", stem_multiplier),
            ("feature_scale_rate", feature_scale_rate),
        ):
            check_positive_int(name, value)
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")
        self.genotype = genotype
        self.input_channels, self.input_size = input_channels, input_size
        c_cur = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(input_channels, c_cur, 3, padding=1, bias=False), make_norm(norm, c_cur))
        c_pp, c_p, c_cur = c_cur, c_cur, C
        reductions = {cells // 3, 2 * cells // 3}
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(cells):
            reduction = i in reductions
            if reduction:
                c_cur *= feature_scale_rate
            cell = _EvalCell(genotype, c_pp, c_p, c_cur, reduction_prev, reduction, norm)
            self.cells.append(cell)
            c_pp, c_p, reduction_prev = c_p, c_cur * len(cell.concat), reduction
        self.feature_dim = c_p
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        self.set_drop_path(drop_path)

    def set_drop_path(self, p: float, generator: torch.Generator | None = None) -> None:
        """Set the drop-path probability (and the generator its masks are drawn from)."""
        p = _check_drop_prob(p)
        for module in self.modules():
            if isinstance(module, DropPath):
                module.p, module.generator = p, generator
        self.drop_path = p

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.input_channels:
            raise ValueError(
                f"expected an image batch [N, {self.input_channels}, H, W], got {tuple(getattr(x, 'shape', ()))}"
            )
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        features = self.global_pooling(s1).flatten(1)
        return features, self.classifier(features)


def build_eval_network(
    genotype_or_preset: Genotype | str | dict,
    num_classes: int,
    input_size: int = 84,
    C: int = 48,
    cells: int | None = None,
    input_channels: int = 3,
    drop_path: float = 0.0,
    *,
    norm: str = "batch",
) -> DartsEvalNetwork:
    """The evaluation network of a Genotype, a preset name (e.g. ``'metantk-nas/mini-5cell-1'``),
    a MetaNAS ``Genotype(...)`` string or its JSON form. ``cells=None`` takes the preset's
    cell count, or 5 for a bare genotype."""
    genotype, preset = resolve_genotype(genotype_or_preset)
    if cells is None:
        cells = preset.cells if preset is not None and preset.cells is not None else _DEFAULT_CELLS
    return DartsEvalNetwork(
        genotype,
        num_classes,
        C=C,
        cells=cells,
        input_channels=input_channels,
        input_size=input_size,
        drop_path=drop_path,
        norm=norm,
    )


def count_parameters(network: nn.Module, *, dummy_alphas: bool = True) -> int:
    """The number of parameters. With ``dummy_alphas`` (default), plus the 20 unused alpha
    parameters the official AugmentCNN registers, i.e. the figure the official
    ``count_params`` prints and the reference table lists (1.761 M for
    ``metantk-nas/mini-5cell-1`` with 64 classes); without, the plain count."""
    total = sum(p.numel() for p in network.parameters())
    return total + (DUMMY_ALPHA_PARAMETERS if dummy_alphas else 0)
