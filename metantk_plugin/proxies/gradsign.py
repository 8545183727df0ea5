"""GradSign (Zhang & Jia, ICLR 2022): how consistently the per-sample loss gradients
agree in sign at initialisation.

For every task image x_i (queries then supports) with label y_i, the per-sample gradient
g_i = ∂ℓ(f(x_i), y_i)/∂θ of the cross-entropy ℓ, over the entries θ_k of every
Conv2d/Linear weight, computed from a forward pass of that image alone (a batch of one,
so BatchNorm in training mode normalises over the image's own positions). Then

    gradsign = Σ_k |Σ_i sign(g_ik)|          (sign 0 for a zero gradient)

Higher is better.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from metantk_plugin.proxies._network import classification_logits, gradients, layer_weights, task_data
from metantk_plugin.proxies.registry import register_proxy
from metantk_plugin.tasks import TaskBatch

__all__ = ["gradsign"]


@register_proxy("gradsign", higher_is_better=True)
def gradsign(network: nn.Module, tasks: TaskBatch, *, seed: int = 0) -> float:
    """GradSign: Σ_k |Σ_i sign(∂ℓ_i/∂θ_k)| over per-sample loss gradients (higher is better)."""
    x, y = task_data(network, tasks)
    weights = layer_weights(network)
    signs = [torch.zeros_like(w, dtype=torch.float64) for w in weights]
    with torch.enable_grad():
        for i in range(x.shape[0]):
            loss = F.cross_entropy(classification_logits(network, x[i:i + 1], y[i:i + 1]), y[i:i + 1])
            for total, g in zip(signs, gradients(loss, weights)):
                total += g.sign()
    return float(sum(s.abs().sum() for s in signs))
