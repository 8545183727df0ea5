"""The two TE-NAS indicators: the NTK condition number and the number of linear regions."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import nn

from metantk_plugin.kernels import condition_number, empirical_ntk
from metantk_plugin.proxies._network import forward_with_hooks

__all__ = ["linear_region_count", "ntk_condition_number"]


def ntk_condition_number(network: nn.Module, x: torch.Tensor, *, backend: str = "gram",
                         label: str = "network") -> float:
    """λ_max/λ_min of the plain empirical NTK of the sum of the network's own logits over
    the batch ``x`` ([N, *input_shape]); lower is better."""
    return condition_number(empirical_ntk(network, x, backend=backend).ntk, label=label)


def linear_region_count(network: nn.Module, x: torch.Tensor) -> int:
    """Number of distinct ReLU activation patterns over the rows of ``x``.

    A sample's pattern is the sign (> 0) of the output of every ``nn.ReLU`` module, in
    call order; two samples lie in the same linear region exactly when their patterns
    are equal. Patterns are streamed into one hash per sample (BLAKE2b over packed bits),
    so memory does not grow with the pattern length.
    """
    relus = [m for m in network.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError("the network has no nn.ReLU module, so it has no ReLU activation pattern")
    hashers = [hashlib.blake2b(digest_size=16) for _ in range(x.shape[0])]

    def hook(module, inputs, output):
        bits = np.packbits((output > 0).reshape(output.shape[0], -1).cpu().numpy(), axis=1)
        for h, row in zip(hashers, bits):
            h.update(row.tobytes())

    forward_with_hooks(network, relus, hook, x)
    return len({h.digest() for h in hashers})
