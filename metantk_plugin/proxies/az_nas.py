"""AZ-NAS (Lee & Ham, CVPR 2024): four per-network components and their rank aggregation.

Each component runs on a private copy re-initialised from ``seed`` as AZ-NAS does: every
Conv2d/Linear weight ~ N(0, 2/fan_in) (Kaiming normal, fan-in) with zero bias, every
normalisation layer's scale 1 and shift 0, the network in training mode (BatchNorm uses
batch statistics). The input is every task image (queries then supports) ``[B, C, H, W]``
(the paper feeds Gaussian noise; ``gaussian=True`` draws N(0, 1) images of the same shape
from ``seed`` instead). The blocks are the network's ``stem`` and each module of its
``cells``; F_0 .. F_L ``[B, C_l, H_l, W_l]`` are their outputs (a network without a
``stem`` module and a non-empty ``cells`` list raises a ValueError).

    X_l        = F_l as (B H_l W_l) × C_l, centred;   λ = eigenvalues of X_lᵀ X_l / (B H_l W_l)
    E_l        = −Σ_c p_c log p_c,   p = λ / Σλ   (0 when Σλ = 0)
    expressivity  = Σ_{l=0..L} E_l
    progressivity = min_{l=1..L} (E_l − E_{l−1})
    trainability  = mean_{l=1..L} t_l,   t_l = −σ_l − 1/(σ_l + 1e-6) + 2
    complexity    = FLOPs of one image (as the ``flops`` proxy)

where σ_l is the largest singular value of M_l = G_inᵀ G_out / (B H_l W_l): G_out holds
Rademacher noise ±1 shaped like F_l (from ``seed``) as rows (B H_l W_l) × C_l, and G_in the
vector-Jacobian product G_outᵀ ∂F_l/∂F_{l−1}, pixel-unshuffled by r = H_{l−1} // H_l
(cropped to r H_l × r W_l first) when the block downsamples. A block whose G_in equals G_out
(an identity) has t_l = −∞; one whose output does not depend on its input (G_in = 0, as
after a block of zeros) has t_l = −1e6 + 2.
Higher is better for all four. The aggregate ``az_nas`` ranks each component within the run
(1 = worst .. n = best, ties averaged, NaN worst) and sums log(rank / n); it changes with the
population, so it is a population proxy (as ``te_nas`` is).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from metantk_plugin.network_adapter import NORM_LAYERS
from metantk_plugin.proxies import size
from metantk_plugin.proxies._network import WEIGHT_LAYERS, task_data
from metantk_plugin.proxies.population import within_run_ranks
from metantk_plugin.proxies.registry import register_population_proxy, register_proxy
from metantk_plugin.tasks import TaskBatch

__all__ = [
    "AZ_COMPONENTS", "az_complexity", "az_expressivity", "az_nas_scores", "az_progressivity", "az_trainability",
    "block_features", "feature_entropy",
]

AZ_COMPONENTS = ("az_expressivity", "az_progressivity", "az_trainability", "az_complexity")
_EPS = 1e-6


def _kaiming_init(network: nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for m in network.modules():
            if isinstance(m, WEIGHT_LAYERS):
                std = math.sqrt(2.0 / m.weight[0].numel())
                m.weight.copy_(std * torch.randn(m.weight.shape, generator=gen, dtype=torch.float64))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, NORM_LAYERS) and getattr(m, "weight", None) is not None:
                m.weight.fill_(1.0)
                m.bias.zero_()


def _blocks(network: nn.Module) -> list[nn.Module]:
    stem, cells = getattr(network, "stem", None), getattr(network, "cells", None)
    if not isinstance(stem, nn.Module) or not isinstance(cells, nn.ModuleList) or not len(cells):
        raise ValueError("AZ-NAS needs the network's blocks: a `stem` module and a non-empty `cells` "
                         f"ModuleList, which {type(network).__name__} does not have")
    return [stem, *cells]


def block_features(network: nn.Module, tasks: TaskBatch, seed: int, gaussian: bool) -> list[torch.Tensor]:
    """F_0 .. F_L: the outputs of ``stem`` and every cell, on the re-initialised network in
    training mode (the graph kept, so gradients between blocks can be taken)."""
    blocks = _blocks(network)
    gen = torch.Generator().manual_seed(seed)
    _kaiming_init(network, gen)
    network.train()
    x, _ = task_data(network, tasks)
    if gaussian:
        x = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(device=x.device, dtype=x.dtype)
    features: list[torch.Tensor] = []
    handles = [b.register_forward_hook(lambda module, inputs, output: features.append(output)) for b in blocks]
    try:
        network(x)
    finally:
        for h in handles:
            h.remove()
    if len(features) != len(blocks) or any(not isinstance(f, torch.Tensor) or f.dim() != 4 for f in features):
        raise ValueError("AZ-NAS needs each block (stem and cells) to be called once and return a feature map")
    return features


def feature_entropy(feature: torch.Tensor) -> float:
    """E_l: entropy of the normalised eigenvalues of the channel covariance of ``feature [B, C, H, W]``."""
    rows = feature.detach().double().permute(0, 2, 3, 1).reshape(-1, feature.shape[1])
    rows = rows - rows.mean(0)
    eig = torch.linalg.eigvalsh(rows.T @ rows / rows.shape[0]).clamp(min=0)
    if float(eig.sum()) <= 0:
        return 0.0
    p = eig / eig.sum()
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def _entropies(network: nn.Module, tasks: TaskBatch, seed: int, gaussian: bool) -> list[float]:
    with torch.no_grad():
        return [feature_entropy(f) for f in block_features(network, tasks, seed, gaussian)]


@register_proxy("az_expressivity", higher_is_better=True)
def az_expressivity(network: nn.Module, tasks: TaskBatch, *, seed: int = 0, gaussian: bool = False) -> float:
    """AZ-NAS expressivity: Σ over blocks of the entropy of the channel-covariance spectrum (higher is better)."""
    return sum(_entropies(network, tasks, seed, gaussian))


@register_proxy("az_progressivity", higher_is_better=True)
def az_progressivity(network: nn.Module, tasks: TaskBatch, *, seed: int = 0, gaussian: bool = False) -> float:
    """AZ-NAS progressivity: the smallest entropy gain from one block to the next (higher is better)."""
    e = _entropies(network, tasks, seed, gaussian)
    return min(b - a for a, b in zip(e, e[1:]))


def _block_trainability(f_in: torch.Tensor, f_out: torch.Tensor, gen: torch.Generator) -> float:
    g_out = (2 * torch.randint(0, 2, f_out.shape, generator=gen) - 1).to(f_out)
    g_in = None
    if f_in.requires_grad and f_out.requires_grad:  # zeros (every NB201 edge none) have no graph
        (g_in,) = torch.autograd.grad(f_out, f_in, g_out, retain_graph=True, allow_unused=True)
    if g_in is None:
        g_in = torch.zeros_like(f_in)
    if g_in.shape == g_out.shape and torch.equal(g_in, g_out):
        return -math.inf
    if g_in.shape[2:] != g_out.shape[2:]:
        r = g_in.shape[2] // g_out.shape[2]
        g_in = F.pixel_unshuffle(g_in[:, :, :r * g_out.shape[2], :r * g_out.shape[3]], r)
    rows_in = g_in.double().permute(0, 2, 3, 1).reshape(-1, g_in.shape[1])
    rows_out = g_out.double().permute(0, 2, 3, 1).reshape(-1, g_out.shape[1])
    sigma = float(torch.linalg.svdvals(rows_in.T @ rows_out / rows_out.shape[0])[0])
    return -sigma - 1.0 / (sigma + _EPS) + 2.0


@register_proxy("az_trainability", higher_is_better=True)
def az_trainability(network: nn.Module, tasks: TaskBatch, *, seed: int = 0, gaussian: bool = False) -> float:
    """AZ-NAS trainability: mean over blocks of −σ − 1/σ + 2, σ the top singular value of the
    block's Jacobian sketched with Rademacher noise (higher is better)."""
    with torch.enable_grad():
        features = block_features(network, tasks, seed, gaussian)
        gen = torch.Generator().manual_seed(seed + 1)
        scores = [_block_trainability(a, b, gen) for a, b in zip(features, features[1:])]
    return sum(scores) / len(scores)


@register_proxy("az_complexity", higher_is_better=True, uses_data=False)
def az_complexity(network: nn.Module, tasks: TaskBatch, *, seed: int = 0) -> float:
    """AZ-NAS complexity: multiply-accumulates of one image, as ``flops`` (higher is better)."""
    return size.flops(network, tasks)


@register_population_proxy("az_nas", inputs=AZ_COMPONENTS, higher_is_better=True)
def az_nas_scores(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """AZ-NAS: Σ over its four components of log(rank / n) within the run (higher is better)."""
    ranks = [within_run_ranks(columns[name], higher_is_better=True) for name in AZ_COMPONENTS]
    return sum(np.log(r / len(r)) for r in ranks)
