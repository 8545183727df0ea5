"""ZiCo (Li et al., ICLR 2023): the inverse coefficient of variation of the loss gradients
across batches, summed over layers in log space.

The task images (queries then supports) and their labels are dealt into ``batches``
interleaved batches (image i goes to batch i mod ``batches``). For batch b, g_b = ∂L_b/∂W
with L_b the mean cross-entropy of the network's logits on that batch, computed afresh
for every batch (gradients are *not* accumulated across batches: the paper's definition
and AZ-NAS's port; the official ZiCo loop never zeroes them, so its later "batches" are
running sums). For every Conv2d/Linear weight W_l with entries θ,

    s_l  = Σ_{θ: std_b(g_θ) > 0} mean_b |g_θ| / std_b(g_θ)     (std over batches, ddof 0)
    zico = Σ_{l: s_l > 0} log s_l

Higher is better. A network with no varying gradient at all scores −inf.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from metantk_plugin.proxies._network import classification_logits, gradients, layer_weights, task_data
from metantk_plugin.proxies.registry import register_proxy
from metantk_plugin.tasks import TaskBatch

__all__ = ["batch_gradients", "zico"]


def batch_gradients(network: nn.Module, x: torch.Tensor, y: torch.Tensor, batches: int) -> list[torch.Tensor]:
    """Per layer, the loss gradients of the interleaved batches stacked: ``[batches, *W_l.shape]``."""
    if isinstance(batches, bool) or not isinstance(batches, int) or not 2 <= batches <= x.shape[0]:
        raise ValueError(f"zico needs 2 <= batches <= {x.shape[0]} (the task images), got {batches!r}")
    weights = layer_weights(network)
    per_batch = []
    with torch.enable_grad():
        for b in range(batches):
            xb, yb = x[b::batches], y[b::batches]
            per_batch.append(gradients(F.cross_entropy(classification_logits(network, xb, yb), yb), weights))
    return [torch.stack(layer).double() for layer in zip(*per_batch)]


@register_proxy("zico", higher_is_better=True)
def zico(network: nn.Module, tasks: TaskBatch, *, seed: int = 0, batches: int = 2) -> float:
    """ZiCo: Σ_l log Σ_θ mean_b|g| / std_b(g) over per-batch loss gradients (higher is better)."""
    x, y = task_data(network, tasks)
    total, used = 0.0, False
    for g in batch_gradients(network, x, y, batches):
        std = g.std(dim=0, unbiased=False)
        varying = std > 0
        s = float((g.abs().mean(dim=0)[varying] / std[varying]).sum())
        if s > 0:
            total, used = total + math.log(s), True
    return total if used else -math.inf
