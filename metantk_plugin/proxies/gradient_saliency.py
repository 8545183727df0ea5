"""Gradient-based saliency proxies of NAS-Bench-Suite-Zero: grad_norm, snip, grasp,
fisher and plain.

All use one labelled batch: every task image (queries then supports) with its label in
``0..ways-1``, the cross-entropy loss L (mean over the batch) of the network's own
logits, and the weights W_l of every Conv2d and Linear layer l. They run on a private
copy of the network in the caller's mode (NAS-Bench-Suite-Zero scores the official
BatchNorm network in training mode); the caller's network is never touched.

    grad_norm = Σ_l ‖∂L/∂W_l‖₂
    snip      = Σ_l Σ |∂L/∂W_l ⊙ W_l|
    grasp     = Σ_l Σ −W_l ⊙ (H g)_l,    g = ∂L/∂W (held constant), H the Hessian of L
    fisher    = Σ_l fan_in(l) Σ_c ½ mean_n (Σ_spatial a_nc ⊙ ∂L/∂a_nc)²,  a = layer output
    plain     = Σ_l Σ ∂L/∂W_l ⊙ W_l   (signed)

Higher is better for all five (for plain only nominally: it anti-correlates on NAS-Bench-201).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from metantk_plugin.proxies._network import (
    classification_logits,
    gradients,
    layer_weights,
    task_data,
    weight_layers,
)
from metantk_plugin.proxies.registry import register_proxy
from metantk_plugin.tasks import TaskBatch

__all__ = ["fisher", "grad_norm", "grasp", "plain", "snip"]


def _loss(net: nn.Module, tasks: TaskBatch) -> torch.Tensor:
    x, y = task_data(net, tasks)
    return F.cross_entropy(classification_logits(net, x, y), y)


def _weights_and_gradients(network: nn.Module, tasks: TaskBatch) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    weights = layer_weights(network)
    with torch.enable_grad():
        grads = gradients(_loss(network, tasks), weights)
    return [w.detach() for w in weights], grads


@register_proxy("grad_norm", higher_is_better=True)
def grad_norm(network: nn.Module, tasks: TaskBatch, *, seed: int = 0) -> float:
    """Sum over Conv2d/Linear layers of the L2 norm of the loss gradient (higher is better)."""
    _, grads = _weights_and_gradients(network, tasks)
    return float(sum(g.norm() for g in grads))


@register_proxy("snip", higher_is_better=True)
def snip(network: nn.Module, tasks: TaskBatch, *, seed: int = 0) -> float:
    """SNIP connection sensitivity Σ|∂L/∂W ⊙ W| (higher is better)."""
    weights, grads = _weights_and_gradients(network, tasks)
    return float(sum((g * w).abs().sum() for w, g in zip(weights, grads)))


@register_proxy("plain", higher_is_better=True)
def plain(network: nn.Module, tasks: TaskBatch, *, seed: int = 0) -> float:
    """First-order Taylor saliency Σ ∂L/∂W ⊙ W, signed (nominally higher is better)."""
    weights, grads = _weights_and_gradients(network, tasks)
    return float(sum((g * w).sum() for w, g in zip(weights, grads)))


@register_proxy("grasp", higher_is_better=True)
def grasp(network: nn.Module, tasks: TaskBatch, *, seed: int = 0) -> float:
    """GraSP: Σ −W ⊙ Hg, the Hessian-gradient product with g = ∂L/∂W (higher is better)."""
    weights = layer_weights(network)
    with torch.enable_grad():
        loss = _loss(network, tasks)
        first = gradients(loss, weights, create_graph=True)
        z = sum((gf * gf.detach()).sum() for gf in first)
        hg = gradients(z, weights) if z.requires_grad else [torch.zeros_like(w) for w in weights]
    return float(sum((-w.detach() * h).sum() for w, h in zip(weights, hg)))


@register_proxy("fisher", higher_is_better=True)
def fisher(network: nn.Module, tasks: TaskBatch, *, seed: int = 0) -> float:
    """Fisher channel saliency ½ mean_n(Σ a ⊙ ∂L/∂a)² per output channel, weighted by the
    layer's fan-in and summed (higher is better)."""
    layers = weight_layers(network)
    if not layers:
        raise ValueError("the network has no Conv2d or Linear layer, so there are no channels to score")
    calls: list[tuple[nn.Module, torch.Tensor]] = []

    def hook(module, inputs, output):
        calls.append((module, output))

    handles = [m.register_forward_hook(hook) for m in layers]
    try:
        with torch.enable_grad():
            loss = _loss(network, tasks)
            grads = gradients(loss, [a for _, a in calls])
    finally:
        for h in handles:
            h.remove()
    total = torch.zeros((), dtype=torch.float64)
    for (module, a), g in zip(calls, grads):
        product = a.detach() * g
        if isinstance(module, nn.Linear):  # channels last: [N, ..., out]
            per_channel = product.reshape(product.shape[0], -1, product.shape[-1]).sum(1)
        else:  # [N, C, H, W]
            per_channel = product.flatten(2).sum(-1)
        saliency = 0.5 * per_channel.pow(2).mean(0)
        total = total + saliency.sum().double() * module.weight[0].numel()
    return float(total)
