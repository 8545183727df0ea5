"""Zen-score (Lin et al. 2021), data-free: how strongly the pre-pooling features react
to a small perturbation of a Gaussian input, with BatchNorm's rescaling added back.

On a private copy in the caller's mode: every Conv2d/Linear weight ~ N(0, 1) and bias 0,
every normalisation layer's scale 1 and shift 0 (drawn from ``seed``). With Gaussian
inputs x, ε of the tasks' batch shape ``[N, C, H, W]`` (also from ``seed``) and F the
feature map entering the network's last global pooling (``nn.AdaptiveAvgPool2d``; the
pooled features when it has none),

    Δ   = mean_n Σ |F(x)_n − F(x + 0.01 ε)_n|
    zen = log Δ + Σ_BN log √(mean_c var_c + eps),   var_c = batch variance of the BN input on x

Higher is better. The BatchNorm term uses the batch statistics the layers normalise by
(with the layer's ``eps``, so a zero input stays finite); it is 0 for a network without
BatchNorm. Δ = 0 (features that do not depend on the input) gives −inf.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from metantk_plugin.network_adapter import NORM_LAYERS, split_output
from metantk_plugin.proxies._network import WEIGHT_LAYERS, device_dtype
from metantk_plugin.proxies.registry import register_proxy
from metantk_plugin.tasks import TaskBatch

__all__ = ["zen"]

_MIXUP = 0.01


def _gaussian_init(net: nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, WEIGHT_LAYERS):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen, dtype=torch.float64))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, NORM_LAYERS) and getattr(m, "weight", None) is not None:
                m.weight.fill_(1.0)
                m.bias.zero_()


@register_proxy("zen", higher_is_better=True, uses_data=False)
def zen(network: nn.Module, tasks: TaskBatch, *, seed: int = 0) -> float:
    """Zen-score log Δ + Σ_BN log σ of the Gaussian-initialised network on Gaussian inputs (higher is better)."""
    gen = torch.Generator().manual_seed(seed)
    _gaussian_init(network, gen)
    device, dtype = device_dtype(network)
    shape = (tasks.n_tasks * (tasks.n_query + tasks.n_support), *tasks.input_shape)
    x = torch.randn(shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    eps = torch.randn(shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)

    pooled: list[torch.Tensor] = []
    bn_scales: list[float] = []
    recording = {"bn": True}

    def pool_hook(module, inputs, output):
        pooled.append(inputs[0])

    def bn_hook(module, inputs, output):
        if recording["bn"]:
            inp = inputs[0].double()
            dims = [d for d in range(inp.dim()) if d != 1]
            bn_scales.append(0.5 * math.log(float(inp.var(dim=dims, unbiased=False).mean()) + module.eps))

    pools = [m for m in network.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    bns = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    handles = [m.register_forward_hook(pool_hook) for m in pools[-1:]]
    handles += [m.register_forward_hook(bn_hook) for m in bns]
    try:
        with torch.no_grad():
            features = []
            for batch in (x, x + _MIXUP * eps):
                pooled.clear()
                out_features, _ = split_output(network(batch))
                features.append(pooled[-1] if pooled else out_features)
                recording["bn"] = False
    finally:
        for h in handles:
            h.remove()
    delta = float((features[0] - features[1]).abs().flatten(1).sum(1).mean())
    if delta <= 0.0:
        return -math.inf
    return math.log(delta) + sum(bn_scales)
