"""Size proxies, data-free: params, flops and l2_norm (higher is better for all three).

    params  = number of parameters of the network (all of them, frozen ones included)
    flops   = multiply-accumulates of every Conv2d and Linear call in one forward pass of
              a single image of the tasks' shape [1, C, H, W] (in eval mode):
              Conv2d: output elements x (in_channels / groups) x kh x kw; Linear: outputs x in_features
    l2_norm = Σ_l ‖W_l‖_F over the Conv2d and Linear weights

NAS-Bench-Suite-Zero reports params and flops in millions; these are raw counts.
"""

from __future__ import annotations

import torch
from torch import nn

from metantk_plugin.proxies._network import device_dtype, layer_weights, weight_layers
from metantk_plugin.proxies.registry import register_proxy
from metantk_plugin.tasks import TaskBatch

__all__ = ["flops", "l2_norm", "params"]


@register_proxy("params", higher_is_better=True, uses_data=False)
def params(network: nn.Module, tasks: TaskBatch, *, seed: int = 0) -> float:
    """Number of parameters (higher is better)."""
    return float(sum(p.numel() for p in network.parameters()))


@register_proxy("flops", higher_is_better=True, uses_data=False)
def flops(network: nn.Module, tasks: TaskBatch, *, seed: int = 0) -> float:
    """Multiply-accumulates of the Conv2d and Linear layers for one image (higher is better)."""
    network.eval()
    layers = weight_layers(network)
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output.numel() * (module.in_channels // module.groups) * kh * kw
        else:
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in layers]
    device, dtype = device_dtype(network)
    try:
        with torch.no_grad():
            network(torch.zeros((1, *tasks.input_shape), device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
    return float(total)


@register_proxy("l2_norm", higher_is_better=True, uses_data=False)
def l2_norm(network: nn.Module, tasks: TaskBatch, *, seed: int = 0) -> float:
    """Σ of the Frobenius norms of the Conv2d/Linear weights (higher is better)."""
    with torch.no_grad():
        return float(sum(w.detach().norm() for w in layer_weights(network)))
