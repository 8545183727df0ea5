"""Registers the built-in proxies (imported by :mod:`metantk_plugin.proxies`): the kernel
proxies here, the NAS-Bench-Suite-Zero set and the population proxies through the modules
imported below.

Each runs on the registry's working copy of the caller's network, so the caller's network
keeps its weights, buffers, gradients, ``requires_grad`` flags and train/eval mode."""

from __future__ import annotations

import math

from torch import nn

from metantk_plugin.proxies import (  # noqa: F401  (register)
    az_nas,
    gradient_saliency,
    gradsign,
    jacobian,
    meco,
    population,
    size,
    swap,
    synflow,
    zen,
    zico,
)
from metantk_plugin.proxies._network import task_data
from metantk_plugin.proxies.metantk import MetaNTK
from metantk_plugin.proxies.registry import register_proxy
from metantk_plugin.proxies.te_nas import linear_region_count, ntk_condition_number
from metantk_plugin.tasks import TaskBatch


def _neg_log(value: float) -> float:
    return -math.log(value)


@register_proxy("metantk", higher_is_better=False, orient=_neg_log)
def metantk(network: nn.Module, tasks: TaskBatch, *, seed: int = 0, algorithm: str = "maml",
            inner_lr_time: float = math.inf, reg: float = 1e-3, backend: str = "gram") -> float:
    """MetaNTK condition number, MAML kernel by default (lower is better)."""
    proxy = MetaNTK(algorithm=algorithm, inner_lr_time=inner_lr_time, reg=reg, seed=seed, backend=backend)
    return proxy.condition_number(network, tasks)


@register_proxy("metantk_anil", higher_is_better=False, orient=_neg_log)
def metantk_anil(network: nn.Module, tasks: TaskBatch, *, seed: int = 0, inner_lr_time: float = math.inf,
                 reg: float = 1e-3, backend: str = "gram") -> float:
    """MetaNTK condition number with ANIL's head kernel (lower is better)."""
    return metantk(network, tasks, seed=seed, algorithm="anil", inner_lr_time=inner_lr_time, reg=reg,
                   backend=backend)


@register_proxy("ntk_cond", higher_is_better=False, orient=_neg_log)
def ntk_cond(network: nn.Module, tasks: TaskBatch, *, seed: int = 0, backend: str = "gram") -> float:
    """TE-NAS: condition number of the plain NTK of the network's logits over all task images."""
    return ntk_condition_number(network, task_data(network, tasks)[0], backend=backend)


@register_proxy("linear_regions", higher_is_better=True)
def linear_regions(network: nn.Module, tasks: TaskBatch, *, seed: int = 0) -> float:
    """TE-NAS: distinct ReLU activation patterns over all task images (higher is better)."""
    return float(linear_region_count(network, task_data(network, tasks)[0]))
