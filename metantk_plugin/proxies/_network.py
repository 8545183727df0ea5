"""Helpers shared by the proxies: a private working copy of the caller's network, the
task inputs on its device, its logits, and the layers whose weights the proxies score."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import torch
from torch import nn

from metantk_plugin.network_adapter import split_output
from metantk_plugin.tasks import TaskBatch

WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)


def working_copy(network: nn.Module) -> nn.Module:
    """A deep copy with every parameter trainable, in the caller's train/eval mode, so a
    proxy may run BatchNorm in training mode, re-initialise or take gradients freely."""
    if not isinstance(network, nn.Module):
        raise TypeError(f"network must be a torch.nn.Module, got {type(network).__name__}")
    net = copy.deepcopy(network)
    for p in net.parameters():
        p.requires_grad_(True)
        p.grad = None
    return net


def device_dtype(network: nn.Module) -> tuple[torch.device, torch.dtype]:
    for p in network.parameters():
        return p.device, p.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def task_data(network: nn.Module, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """All task images ``[N, C, H, W]`` (queries then supports) on the network's device and
    dtype, and their labels ``[N]`` in ``0..ways-1``."""
    if not isinstance(tasks, TaskBatch):
        raise TypeError(f"tasks must be a TaskBatch, got {type(tasks).__name__}")
    device, dtype = device_dtype(network)
    return tasks.inputs().to(device=device, dtype=dtype), tasks.labels().to(device)


def logits_of(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The network's own logits ``[N, k]`` for ``x`` (the second item of a (features, logits) pair)."""
    return split_output(network(x))[1]


def classification_logits(network: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Logits ``[N, k]``, checked to have an output for every label (k > max label)."""
    logits = logits_of(network, x)
    if logits.dim() != 2:
        raise ValueError(f"loss-based proxies need logits [N, classes], got shape {tuple(logits.shape)}")
    if int(labels.max()) >= logits.shape[1]:
        raise ValueError(
            f"the network has {logits.shape[1]} outputs but the task labels go up to {int(labels.max())}: "
            "build the network with at least `ways` classes"
        )
    return logits


def weight_layers(network: nn.Module) -> list[nn.Module]:
    """Every Conv2d and Linear module, in registration order."""
    return [m for m in network.modules() if isinstance(m, WEIGHT_LAYERS)]


def layer_weights(network: nn.Module) -> list[torch.Tensor]:
    """The weights of :func:`weight_layers`; a ValueError when there are none."""
    weights = [m.weight for m in weight_layers(network)]
    if not weights:
        raise ValueError("the network has no Conv2d or Linear layer, so there are no weights to score")
    return weights


def gradients(output: torch.Tensor, tensors: list[torch.Tensor], **kwargs) -> list[torch.Tensor]:
    """``d output / d tensors`` with zeros for tensors the output does not depend on."""
    grads = torch.autograd.grad(output, tensors, allow_unused=True, **kwargs)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(tensors, grads)]


def forward_with_hooks(network: nn.Module, modules: Iterable[nn.Module], hook: Callable, x: torch.Tensor) -> None:
    """One forward pass of ``x`` without gradients with the forward ``hook`` on ``modules``
    (removed afterwards, also when the pass fails)."""
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        with torch.no_grad():
            network(x)
    finally:
        for h in handles:
            h.remove()
