"""GroupNorm in place of BatchNorm, so that samples stay independent for kernels.

BatchNorm in training mode mixes the samples of a batch, which leaves per-sample
gradients (and so the NTK) undefined. Kernel computations swap it for GroupNorm with
``group_count(C)`` groups: the largest divisor of C not above 16 (16 for multiples of
16, the official MetaNTK-NAS ``groupnorm16``), keeping the affine parameters.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["batchnorm_to_groupnorm", "group_count", "group_norm_like"]

_MAX_GROUPS = 16


def group_count(channels: int) -> int:
    """The largest divisor of ``channels`` not above 16."""
    return max(g for g in range(1, min(_MAX_GROUPS, channels) + 1) if channels % g == 0)


def group_norm_like(bn: nn.modules.batchnorm._BatchNorm) -> nn.GroupNorm:
    """A GroupNorm over the same channels, eps and affine parameters (copied) as ``bn``."""
    channels = bn.num_features
    gn = nn.GroupNorm(group_count(channels), channels, eps=bn.eps, affine=bn.affine)
    if bn.affine:
        with torch.no_grad():
            gn.weight.copy_(bn.weight)
            gn.bias.copy_(bn.bias)
        gn = gn.to(bn.weight.device)
    return gn


def batchnorm_to_groupnorm(module: nn.Module) -> None:
    """Replace every BatchNorm inside ``module`` by :func:`group_norm_like`, in place."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, group_norm_like(child))
        else:
            batchnorm_to_groupnorm(child)
