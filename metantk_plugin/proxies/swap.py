"""SWAP (Peng et al., ICLR 2024): sample-wise activation patterns, with an optional
parameter-count regulariser.

Feed every task image (B of them, queries then supports). Concatenate, per image, the
flattened outputs of every ``nn.ReLU`` module whose output is a feature map (4-D) into
A ``[B, M]``, and let P = 1[A > 0]. Each column of P is one neuron's pattern across the
B images, and

    swap     = |{distinct columns of P}|                         (at most min(M, 2^B))
    swap_reg = swap · exp(−(P_K − μ)² / σ),   P_K = parameters / 1000

Higher is better for both. ``reinits = 0`` (the default, the paper's definition) scores
the network's own weights; ``reinits = k > 0`` averages the count over k re-initialisations
of every Conv2d/Linear weight with N(0, 1) entries drawn from ``seed`` (the official code
uses 32; with BatchNorm in training mode the patterns do not depend on the weights' scale).

μ and σ default to NAS-Bench-201 at the package's default size (C = 16, N = 5, 5 classes):
μ = 1531.2, the P_K of the largest cell (every edge nor_conv_3x3), and σ = (μ − 73.0)² =
1458.2² ≈ 2.1264e6, 73.0 being the P_K of the smallest one (every edge none), so the regulariser runs from 1 at the
largest network to e⁻¹ at the smallest (chosen from the parameter range only, without
accuracies, so no benchmark data tunes it). A network without such a ReLU raises a ValueError.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from metantk_plugin.proxies._network import WEIGHT_LAYERS, forward_with_hooks, task_data
from metantk_plugin.proxies.registry import register_proxy
from metantk_plugin.tasks import TaskBatch

__all__ = ["activation_pattern_count", "swap", "swap_reg"]

NB201_MU = 1531.2
NB201_SIGMA = 1458.2**2


def activation_pattern_count(network: nn.Module, x: torch.Tensor) -> int:
    """Distinct columns of ``1[A > 0]``, A ``[B, M]`` the 4-D ReLU outputs of ``x`` concatenated per image."""
    if not any(isinstance(m, nn.ReLU) for m in network.modules()):
        raise ValueError("SWAP needs ReLU feature maps, but the network has no nn.ReLU module")
    weights = 1 << torch.arange(x.shape[0], device=x.device, dtype=torch.int64) if x.shape[0] <= 62 else None
    codes: list[torch.Tensor] = []

    def hook(module, inputs, output):
        if output.dim() == 4:
            bits = (output.detach() > 0).flatten(1)  # [B, M_l]
            codes.append((bits.T.long() * weights).sum(1) if weights is not None else bits.T.to(torch.uint8))

    forward_with_hooks(network, [m for m in network.modules() if isinstance(m, nn.ReLU)], hook, x)
    if not codes:
        raise ValueError("SWAP needs ReLU feature maps, but no nn.ReLU module produced a 4-D output")
    columns = torch.cat(codes)  # [M]: one integer per neuron, or [M, B] bits beyond 62 images
    return int((torch.unique(columns) if columns.dim() == 1 else torch.unique(columns, dim=0)).shape[0])


def _normal_init(network: nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for m in network.modules():
            if isinstance(m, WEIGHT_LAYERS):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen, dtype=torch.float64))


@register_proxy("swap", higher_is_better=True)
def swap(network: nn.Module, tasks: TaskBatch, *, seed: int = 0, reinits: int = 0) -> float:
    """SWAP: distinct per-neuron ReLU sign patterns across the task images (higher is better)."""
    if isinstance(reinits, bool) or not isinstance(reinits, int) or reinits < 0:
        raise ValueError(f"swap needs reinits >= 0, got {reinits!r}")
    x, _ = task_data(network, tasks)
    if reinits == 0:
        return float(activation_pattern_count(network, x))
    gen = torch.Generator().manual_seed(seed)
    counts = []
    for _ in range(reinits):
        _normal_init(network, gen)
        counts.append(activation_pattern_count(network, x))
    return sum(counts) / reinits


@register_proxy("swap_reg", higher_is_better=True)
def swap_reg(network: nn.Module, tasks: TaskBatch, *, seed: int = 0, reinits: int = 0, mu: float = NB201_MU,
             sigma: float = NB201_SIGMA) -> float:
    """Regularised SWAP: swap · exp(−(P_K − μ)²/σ), P_K the parameters in thousands (higher is better)."""
    if not sigma > 0:
        raise ValueError(f"swap_reg needs sigma > 0, got {sigma!r}")
    p_k = sum(p.numel() for p in network.parameters()) / 1000.0
    return swap(network, tasks, seed=seed, reinits=reinits) * math.exp(-((p_k - mu) ** 2) / sigma)
