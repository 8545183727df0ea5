"""The eight operations of the few-shot DARTS space (MetaNAS / MetaNTK-NAS) and their parts.

Every operation maps ``[N, C, H, W]`` to ``[N, C, H', W']`` with ``H' = (H - 1) // s + 1``
(``s`` = stride, 1 or 2). Written with ``Conv2d``, norm, pooling and ``ReLU`` modules only,
so the NTK engine's 'gram' backend and ReLU-hook region counting see every layer.

=================  ==========================================================  ================
name               definition                                                  parameters
=================  ==========================================================  ================
none               zeros                                                       0
skip_connect       identity (s = 1) / FactorizedReduce (s = 2)                 0 / C² + n
sep_conv_3x3       SepConv(3x3, s, pad 1) -> SepConv(3x3, 1, pad 1)            2(9C + C² + n)
dil_conv_3x3       SepConv(3x3, s, pad 2, dilation 2)                          9C + C² + n
avg_pool_3x3BN     AvgPool(3, s, pad 1, count_include_pad=False) -> norm       n
max_pool_3x3BN     MaxPool(3, s, pad 1) -> norm                                n
conv_1x5_5x1       ReLU -> Conv(1x5, s, pad (0,2)) -> Conv(5x1, pad (2,0))      10C² + n
                   -> norm
conv_3x3           SepConv(3x3, s, pad 1): one depthwise-separable block        9C + C² + n
=================  ==========================================================  ================

``SepConv`` = ReLU -> depthwise Conv k x k (groups = C) -> pointwise Conv 1x1 -> norm;
``n`` = 2C for an affine norm ('batch', 'group') and 0 for 'none'. No conv has a bias.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn import functional as F

from metantk_plugin.network_adapter import NETWORK_NORMS as NORMS
from metantk_plugin.task_spec import check_positive_int

__all__ = [
    "NORMS",
    "OP_ALIASES",
    "OP_NAMES",
    "AvgPool3x3",
    "DualSepConv",
    "FacConv",
    "FactorizedReduce",
    "LeadingReLU",
    "MaxPool3x3",
    "PoolNorm",
    "ReLUConvNorm",
    "SepConv",
    "Zero",
    "build_operation",
    "canonical_op_name",
    "make_norm",
]

OP_NAMES: tuple[str, ...] = (
    "none",
    "skip_connect",
    "sep_conv_3x3",
    "dil_conv_3x3",
    "avg_pool_3x3BN",
    "max_pool_3x3BN",
    "conv_1x5_5x1",
    "conv_3x3",
)
"""The operations in the official order (``DARTS_FEWSHOT``); the index is the alpha column."""

OP_ALIASES: dict[str, str] = {"avg_pool_3x3": "avg_pool_3x3BN", "max_pool_3x3": "max_pool_3x3BN"}
"""MetaNAS spellings of the pooling operations."""

_GROUPNORM_GROUPS = 16


def canonical_op_name(name: str) -> str:
    """The official operation name for ``name`` (MetaNAS aliases resolved); ValueError if unknown."""
    canonical = OP_ALIASES.get(name, name)
    if canonical not in OP_NAMES:
        raise ValueError(
            f"unknown operation {name!r}; expected one of {', '.join(OP_NAMES)} "
            f"(or the MetaNAS aliases {', '.join(OP_ALIASES)})"
        )
    return canonical


def make_norm(norm: str, channels: int) -> nn.Module:
    """The normalisation layer over ``channels``: 'batch' = BatchNorm2d(affine, running
    stats), as in the official code; 'group' = GroupNorm(min(16, C), C), the official
    ``groupnorm16`` used for kernels; 'none' = Identity."""
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if norm == "group":
        groups = min(_GROUPNORM_GROUPS, channels)
        if channels % groups:
            raise ValueError(
                f"norm='group' needs a channel count divisible by min(16, C); a layer here has "
                f"{channels} channels, which is not a multiple of {groups}. Choose C so that every "
                "channel count (C, 2C, 4C and 3x these) is below 16 or a multiple of 16, e.g. C=16 or 48."
            )
        return nn.GroupNorm(groups, channels, affine=True)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")


def _check_stride(stride: int) -> int:
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride!r}")
    return stride


class Zero(nn.Module):
    """The 'none' operation: zeros of shape ``[N, C, (H - 1) // s + 1, (W - 1) // s + 1]``."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = _check_stride(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        s = self.stride
        return x.new_zeros(n, c, (h - 1) // s + 1, (w - 1) // s + 1)


class LeadingReLU:
    """An operation that starts by applying ReLU to its input: ``op(x) == op.after_relu(relu(x))``.

    A supernet edge holds several of these on one input, so its cell rectifies each input
    once and hands it to all of them (values unchanged; 4-5 ReLUs per edge become 1 per state)."""

    def after_relu(self, x: torch.Tensor) -> torch.Tensor:
        """The operation on an input already rectified: every module after the first ReLU."""
        for module in itertools.islice(self, 1, None):
            x = module(x)
        return x


class ReLUConvNorm(LeadingReLU, nn.Sequential):
    """ReLU -> Conv k x k (no bias) -> norm; the cells' 1x1 preprocessing (``StdConv``)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, norm: str):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            make_norm(norm, c_out),
        )


class SepConv(LeadingReLU, nn.Sequential):
    """ReLU -> depthwise Conv k x k (stride, padding, dilation; groups = C) -> Conv 1x1 -> norm."""

    def __init__(self, channels: int, kernel_size: int, stride: int, padding: int, dilation: int, norm: str):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(
                channels,
                channels,
                kernel_size,
                stride=_check_stride(stride),
                padding=padding,
                dilation=dilation,
                groups=channels,
                bias=False,
            ),
            nn.Conv2d(channels, channels, 1, bias=False),
            make_norm(norm, channels),
        )


class DualSepConv(LeadingReLU, nn.Sequential):
    """Two SepConv blocks, the first with the stride: the official 'sep_conv_3x3'."""

    def __init__(self, channels: int, kernel_size: int, stride: int, padding: int, norm: str):
        super().__init__(
            SepConv(channels, kernel_size, stride, padding, 1, norm),
            SepConv(channels, kernel_size, 1, padding, 1, norm),
        )

    def after_relu(self, x: torch.Tensor) -> torch.Tensor:
        return self[1](self[0].after_relu(x))


class FacConv(LeadingReLU, nn.Sequential):
    """ReLU -> Conv(1 x K, stride, pad (0, K//2)) -> Conv(K x 1, pad (K//2, 0)) -> norm.

    The official code applies the 1 x K convolution first (its docstring says otherwise)."""

    def __init__(self, channels: int, kernel_length: int, stride: int, norm: str):
        pad = kernel_length // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(
                channels, channels, (1, kernel_length), stride=_check_stride(stride), padding=(0, pad), bias=False
            ),
            nn.Conv2d(channels, channels, (kernel_length, 1), stride=1, padding=(pad, 0), bias=False),
            make_norm(norm, channels),
        )


def _pool_channels_last(pool: nn.Module, forward, x: torch.Tensor) -> torch.Tensor:
    """Run a pooling ``forward`` in channels-last memory on CPU, where PyTorch's NCHW 3x3
    pooling kernels are several times slower; values, max indices and gradients are the
    same. The result is NCHW-contiguous, unless ``x`` was channels-last already: then it
    stays so, like the convolutions' outputs beside it (no transposing copy either way, or
    in the backward pass)."""
    if x.device.type != "cpu" or x.dim() != 4:
        return forward(pool, x)
    try:
        already_last = x.is_contiguous(memory_format=torch.channels_last)
        x_last = x if already_last else x.contiguous(memory_format=torch.channels_last)
    except RuntimeError:  # inside torch.func transforms (vmap), which refuse memory formats
        return forward(pool, x)
    out = forward(pool, x_last)
    return out if already_last else out.contiguous()


class MaxPool3x3(nn.MaxPool2d):
    """``nn.MaxPool2d(3, stride, padding=1)``, computed channels-last on CPU."""

    def __init__(self, stride: int):
        super().__init__(3, stride=_check_stride(stride), padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _pool_channels_last(self, nn.MaxPool2d.forward, x)


class AvgPool3x3(nn.AvgPool2d):
    """``nn.AvgPool2d(3, stride, padding=1, count_include_pad=False)``, computed channels-last on CPU."""

    def __init__(self, stride: int):
        super().__init__(3, stride=_check_stride(stride), padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _pool_channels_last(self, nn.AvgPool2d.forward, x)


class PoolNorm(nn.Sequential):
    """AvgPool / MaxPool 3x3 (stride, pad 1) -> norm; average pooling excludes the padding."""

    def __init__(self, kind: str, channels: int, stride: int, norm: str):
        if kind == "avg":
            pool: nn.Module = AvgPool3x3(stride)
        elif kind == "max":
            pool = MaxPool3x3(stride)
        else:
            raise ValueError(f"pool kind must be 'avg' or 'max', got {kind!r}")
        super().__init__(pool, make_norm(norm, channels))


class FactorizedReduce(LeadingReLU, nn.Module):
    """Halve the resolution with two offset 1x1 stride-2 convolutions.

    ``y = norm(concat[conv_a(relu(x)), conv_b(pad(relu(x), right/bottom 1)[:, :, 1:, 1:])])``
    with ``conv_a: C_in -> C_out // 2`` and ``conv_b: C_in -> C_out - C_out // 2``;
    ``[N, C_in, H, W] -> [N, C_out, (H + 1) // 2, (W + 1) // 2]``."""

    def __init__(self, c_in: int, c_out: int, norm: str):
        super().__init__()
        if c_out < 2:
            raise ValueError(f"FactorizedReduce needs at least 2 output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_a = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_b = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.norm = make_norm(norm, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.after_relu(self.relu(x))

    def after_relu(self, x: torch.Tensor) -> torch.Tensor:
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.norm(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


def build_operation(name: str, channels: int, stride: int, norm: str = "batch") -> nn.Module:
    """The operation ``name`` (an official name or a MetaNAS alias) over ``channels`` channels."""
    name = canonical_op_name(name)
    _check_stride(stride)
    check_positive_int("channels", channels)
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")
    if name == "none":
        return Zero(stride)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels, norm)
    if name == "sep_conv_3x3":
        return DualSepConv(channels, 3, stride, 1, norm)
    if name == "dil_conv_3x3":
        return SepConv(channels, 3, stride, 2, 2, norm)
    if name == "avg_pool_3x3BN":
        return PoolNorm("avg", channels, stride, norm)
    if name == "max_pool_3x3BN":
        return PoolNorm("max", channels, stride, norm)
    if name == "conv_1x5_5x1":
        return FacConv(channels, 5, stride, norm)
    return SepConv(channels, 3, stride, 1, 1, norm)  # conv_3x3
