"""MeCo (Jiang et al., NeurIPS 2023): the minimum eigenvalue of the channel correlation
matrix of every feature map, for one image, with one forward pass and no backward.

On a private copy in the caller's mode, feed the first task image ``[1, C_in, H, W]``.
For every leaf module l (a module with no children: the paper's "layer"; the official
code also hooks containers, which counts a Sequential's output twice) whose output is a
feature map ``[1, C_l, H_l, W_l]``, let X_l ``[C_l, H_l W_l]`` be that map and R_l its
C_l × C_l correlation matrix (Pearson, rows = channels; a constant channel makes its row
NaN, and NaN/inf entries are set to 0 as in the official code). Then

    meco     = Σ_l λ_min(R_l)
    meco_opt = Σ_l (C_l / k) λ_min(R_l[S_l, S_l]),   S_l = k random channels (k = 8, or all C_l ≤ k)

Higher is better for both. ``meco_opt`` draws S_l from ``seed``. A network without a
Conv2d layer has no feature maps to score and raises a ValueError.
"""

from __future__ import annotations

import torch
from torch import nn

from metantk_plugin.proxies._network import forward_with_hooks, task_data
from metantk_plugin.proxies.registry import register_proxy
from metantk_plugin.tasks import TaskBatch

__all__ = ["feature_maps", "meco", "meco_opt", "min_correlation_eigenvalue"]


def feature_maps(network: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Outputs ``[C_l, H_l * W_l]`` (float64) of every leaf module producing a 4-D map, for ``x [1, C, H, W]``."""
    if not any(isinstance(m, nn.Conv2d) for m in network.modules()):
        raise ValueError("MeCo needs convolutional feature maps, but the network has no Conv2d layer")
    maps: list[torch.Tensor] = []

    def hook(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.dim() == 4:
            maps.append(output[0].detach().flatten(1).double())

    forward_with_hooks(network, [m for m in network.modules() if not any(m.children())], hook, x)
    return maps


def min_correlation_eigenvalue(rows: torch.Tensor) -> float:
    """λ_min of ``corrcoef(rows)`` (``rows [C, M]``) with NaN and inf entries set to 0 (so 0
    for a map with one position, whose correlations are all undefined)."""
    if rows.shape[1] < 2:
        return 0.0
    corr = torch.corrcoef(rows).reshape(rows.shape[0], rows.shape[0])
    corr = torch.where(torch.isfinite(corr), corr, torch.zeros_like(corr))
    return float(torch.linalg.eigvalsh(corr)[0])


def _first_image(network: nn.Module, tasks: TaskBatch) -> torch.Tensor:
    return task_data(network, tasks)[0][:1]


@register_proxy("meco", higher_is_better=True)
def meco(network: nn.Module, tasks: TaskBatch, *, seed: int = 0) -> float:
    """MeCo: Σ over feature maps of λ_min of the channel correlation matrix, one image (higher is better)."""
    return sum(min_correlation_eigenvalue(m) for m in feature_maps(network, _first_image(network, tasks)))


@register_proxy("meco_opt", higher_is_better=True)
def meco_opt(network: nn.Module, tasks: TaskBatch, *, seed: int = 0, channels: int = 8) -> float:
    """MeCo_opt: MeCo on ``channels`` seeded random channels per map, scaled by C/channels (higher is better)."""
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 2:
        raise ValueError(f"meco_opt needs channels >= 2, got {channels!r}")
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    for rows in feature_maps(network, _first_image(network, tasks)):
        c = rows.shape[0]
        if c <= channels:
            total += min_correlation_eigenvalue(rows)
        else:
            pick = torch.randperm(c, generator=gen)[:channels].to(rows.device)
            total += c / channels * min_correlation_eigenvalue(rows[pick])
    return total
