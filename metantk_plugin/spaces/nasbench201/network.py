"""The official NAS-Bench-201 network for any cell, with a choice of normalisation.

Shapes: ``x [B, in_channels, H, W]`` -> stem (3x3 conv, norm) -> ``N`` cells at ``C``
channels -> residual reduction -> ``N`` cells at ``2C`` -> residual reduction -> ``N``
cells at ``4C`` -> norm, ReLU -> global average pool, the features ``[B, 4C]`` ->
linear, the logits ``[B, num_classes]``. ``forward`` returns ``(features, logits)``.

* Cell: ``node_j = sum_{i<j} op_ij(node_i)`` over nodes 0 (the cell input) .. 3 (its
  output), with ``none`` = zeros, ``skip_connect`` = identity, ``nor_conv_kxk`` = ReLU,
  k x k convolution (stride 1, same padding, no bias), norm, and ``avg_pool_3x3`` = 3x3
  average pooling (stride 1, padding 1, padded cells not counted). Every edge is
  computed, including edges that cannot reach the output, as in the official network.
* Residual reduction (ResNet basic block, stride 2, channels doubled): ReLU-conv3x3
  (stride 2)-norm, then ReLU-conv3x3-norm, plus the shortcut 2x2 average pool (stride 2)
  -> 1x1 convolution (no bias).
* ``norm``: ``'batch'`` is the official BatchNorm (affine, running statistics);
  ``'group'`` is GroupNorm (affine) with as many groups as the largest divisor of the
  channel count not above 16 (16 for multiples of 16, like the MetaNTK-NAS code's
  ``groupnorm16``), the same parameter count as ``'batch'``; ``'none'`` is the identity.
  Kernel computations need ``'group'`` or ``'none'`` (samples must not interact).

With ``C=16, N=5, num_classes=10`` and ``norm='batch'`` or ``'group'`` the parameter
count equals NAS-Bench-201's ``params`` for every cell. Module names follow the official
implementation (``stem``, ``cells[k].layers[e].op``, ``conv_a``, ``conv_b``,
``downsample``, ``lastact``, ``classifier``; ``layers`` in the official edge order).
"""

from __future__ import annotations

import torch
from torch import nn

from metantk_plugin.network_adapter import NETWORK_NORMS as NORMS
from metantk_plugin.network_adapter import group_count
from metantk_plugin.spaces.nasbench201.codec import EDGES, NB201Arch, parse_arch
from metantk_plugin.task_spec import check_positive_int

__all__ = ["NORMS", "NB201Network", "build_network"]


class NB201Network(nn.Module):
    """The NAS-Bench-201 network of ``arch`` (any encoding :func:`parse_arch` reads).

    ``C`` stem channels, ``N`` cells per stage, ``num_classes`` logits, ``norm`` in
    :data:`NORMS`, ``in_channels`` of the images; ``seed`` draws the initial weights from
    ``torch.manual_seed(seed)`` without touching the global generator (``None``: the
    global generator draws them)."""

    head_name = "classifier"
    """The linear head: ``logits = classifier(features)`` (what ANIL adapts)."""

    def __init__(
        self,
        arch,
        C: int = 16,
        N: int = 5,
        num_classes: int = 10,
        norm: str = "batch",
        *,
        in_channels: int = 3,
        seed: int | None = None,
    ):
        super().__init__()
        self.arch: NB201Arch = parse_arch(arch)
        for name, value in (("C", C), ("N", N), ("num_classes", num_classes), ("in_channels", in_channels)):
            check_positive_int(name, value)
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an int or None, got {seed!r}")
        self.C, self.N, self.num_classes, self.norm, self.in_channels = C, N, num_classes, norm, in_channels
        self.feature_dim = 4 * C
        if seed is None:
            self._build()
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self._build()

    def _build(self) -> None:
        C, norm = self.C, self.norm
        self.stem = nn.Sequential(nn.Conv2d(self.in_channels, C, 3, padding=1, bias=False), _norm_layer(norm, C))
        self.cells = nn.ModuleList()
        channels = C
        for stage in range(3):
            if stage:
                self.cells.append(_ResidualReduction(channels, 2 * channels, norm))
                channels *= 2
            self.cells.extend(_Cell(self.arch, channels, norm) for _ in range(self.N))
        self.lastact = nn.Sequential(_norm_layer(norm, channels), nn.ReLU())
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, self.num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, in_channels, H, W]`` -> ``(features [B, 4C], logits [B, num_classes])``."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"NB201Network expects images [batch, {self.in_channels}, height, width], got {shape}")
        if x.shape[2] % 4 or x.shape[3] % 4:
            raise ValueError(f"NB201Network needs a height and width that are multiples of 4 (two stride-2 "
                             f"reductions meet a 2x2 pooled shortcut), got {x.shape[2]}x{x.shape[3]}")
        out = self.stem(x)
        for cell in self.cells:
            out = cell(out)
        features = self.global_pooling(self.lastact(out)).flatten(1)
        return features, self.classifier(features)

    def extra_repr(self) -> str:
        return (
            f"arch={self.arch.to_string()!r}, C={self.C}, N={self.N}, "
            f"num_classes={self.num_classes}, norm={self.norm!r}"
        )


def build_network(arch, **options) -> NB201Network:
    """``NB201Network(arch, **options)``; ``arch`` is a string, index, NNI dict, NASLib tuple or ``NB201Arch``."""
    return NB201Network(arch, **options)


class _Cell(nn.Module):
    """``node_j = sum_{i<j} layers[e(i, j)](node_i)``; returns node 3 (channels unchanged)."""

    def __init__(self, arch: NB201Arch, channels: int, norm: str):
        super().__init__()
        self.layers = nn.ModuleList(_operation(op, channels, norm) for op in arch.ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for target in (1, 2, 3):
            terms = [self.layers[e](nodes[source]) for e, (source, end) in enumerate(EDGES) if end == target]
            nodes.append(sum(terms[1:], terms[0]))
        return nodes[3]


class _ReLUConvNorm(nn.Module):
    """ReLU -> k x k convolution (no bias, same padding) -> norm."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, norm: str):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            _norm_layer(norm, c_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class _ResidualReduction(nn.Module):
    """ResNet basic block with stride 2: ``conv_b(conv_a(x)) + conv1x1(avgpool2x2(x))``."""

    def __init__(self, c_in: int, c_out: int, norm: str):
        super().__init__()
        self.conv_a = _ReLUConvNorm(c_in, c_out, 3, 2, norm)
        self.conv_b = _ReLUConvNorm(c_out, c_out, 3, 1, norm)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.downsample(x)


class _Zero(nn.Module):
    """The ``none`` operation: zeros shaped like the input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def _operation(op: str, channels: int, norm: str) -> nn.Module:
    if op == "none":
        return _Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return _ReLUConvNorm(channels, channels, 1, 1, norm)
    if op == "nor_conv_3x3":
        return _ReLUConvNorm(channels, channels, 3, 1, norm)
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


def _norm_layer(norm: str, channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        return nn.GroupNorm(group_count(channels), channels)
    return nn.Identity()
