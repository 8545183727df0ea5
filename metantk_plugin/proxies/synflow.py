"""SynFlow (Tanaka et al. 2020), data-free: the synaptic flow through the network.

On a private float64 copy with every normalisation layer replaced by the identity and
every parameter replaced by its absolute value, feed one all-ones input
``[1, C, H, W]`` (the tasks' image shape) and let R = Σ logits. Then

    synflow = Σ_l Σ |W_l ⊙ ∂R/∂W_l|      over Conv2d and Linear weights  (higher is better)

The raw sum is returned (NAS-Bench-Suite-Zero stores log(synflow); ranks are the same).
It can overflow to inf for very deep or wide networks; float64 keeps NB201 finite.
"""

from __future__ import annotations

import torch
from torch import nn

from metantk_plugin.network_adapter import strip_normalisation
from metantk_plugin.proxies._network import device_dtype, gradients, layer_weights, logits_of
from metantk_plugin.proxies.registry import register_proxy
from metantk_plugin.tasks import TaskBatch

__all__ = ["synflow"]


@register_proxy("synflow", higher_is_better=True, uses_data=False)
def synflow(network: nn.Module, tasks: TaskBatch, *, seed: int = 0) -> float:
    """Synaptic flow Σ|W ⊙ ∂R/∂W| of the |W|-network on an all-ones input, norms removed (higher is better)."""
    net = strip_normalisation(network).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    weights = layer_weights(net)
    device, _ = device_dtype(net)
    ones = torch.ones((1, *tasks.input_shape), dtype=torch.float64, device=device)
    with torch.enable_grad():
        grads = gradients(logits_of(net, ones).sum(), weights)
    return float(sum((w.detach() * g).abs().sum() for w, g in zip(weights, grads)))
