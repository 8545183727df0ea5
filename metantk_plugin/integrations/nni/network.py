"""Make a network sampled from an NNI model space fit for the kernel proxies.

NNI hands an evaluator a freshly built ``nn.Module`` whose weights come from whatever
state the global random generator was in, and NNI's hub spaces (NAS-Bench-201 among
them) normalise with BatchNorm, which couples the samples of a batch, so per-sample
gradients, and with them every NTK, are undefined. :func:`kernel_ready` therefore

1. copies the network (the caller's module is never changed),
2. re-draws every parameter from ``seed``: each module's own ``reset_parameters()`` in
   module order, under a forked generator, so a score depends only on the architecture,
   the seed and the tasks, never on what NNI drew before,
3. replaces the BatchNorm layers by ``norm``, one of
   :data:`~metantk_plugin.network_adapter.KERNEL_NORMS`
   (:func:`~metantk_plugin.network_adapter.replace_batchnorm`):

   * ``'group'`` (default, as the official MetaNTK-NAS code does): ``GroupNorm`` over
     ``C`` channels with as many groups as the largest divisor of ``C`` not above 16
     (16 for multiples of 16, the official ``groupnorm16``); affine parameters copied;
   * ``'eval'``: BatchNorm kept, switched to evaluation mode (fresh running statistics:
     ``y = x / sqrt(1 + eps)``, i.e. no normalisation at initialisation);
   * ``'none'``: BatchNorm replaced by the identity;

4. exposes features: with ``feature_layer='auto'`` a network with a ``classifier``
   ``nn.Linear`` (every NNI hub space) returns ``(features, logits)``, the features being
   the classifier's input ``[N, D]``
   (:class:`~metantk_plugin.network_adapter.FeaturesAndLogits`), so MetaNTK attaches its
   head to the penultimate features as in the paper; a network without one is scored on
   its outputs.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from metantk_plugin.network_adapter import KERNEL_NORMS, FeaturesAndLogits, replace_batchnorm

__all__ = ["NORM_MODES", "kernel_ready"]

NORM_MODES = KERNEL_NORMS
"""The ``norm`` values :func:`kernel_ready` accepts: :data:`~metantk_plugin.network_adapter.KERNEL_NORMS`."""


def kernel_ready(
    network: nn.Module,
    *,
    seed: int = 0,
    norm: str = "group",
    feature_layer: str | None = "auto",
    device: torch.device | str | None = None,
) -> nn.Module:
    """A re-initialised, sample-independent copy of ``network`` (see the module docstring)
    returning ``(features, logits)`` when a feature layer is found, else its own output."""
    _check_norm(norm)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {seed!r}")
    net = copy.deepcopy(network).cpu()
    _reset_parameters(net, seed)
    wrapped = _kernel_view(net, norm, feature_layer)
    return wrapped.to(device) if device is not None else wrapped


def _check_norm(norm: str) -> None:
    """ValueError unless ``norm`` is one of :data:`NORM_MODES`."""
    if norm not in NORM_MODES:
        raise ValueError(f"norm must be one of {NORM_MODES}, got {norm!r}")


def _kernel_view(network: nn.Module, norm: str, feature_layer: str | None = "auto") -> nn.Module:
    """``network`` with its BatchNorm replaced in place by ``norm`` (steps 3 and 4 of the
    module docstring), wrapped to return ``(features, logits)`` when a feature layer is found."""
    replace_batchnorm(network, norm)
    layer = _feature_layer(network, feature_layer)
    return network if layer is None else FeaturesAndLogits(network, layer)


def _reset_parameters(network: nn.Module, seed: int) -> None:
    covered: set[int] = set()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in network.modules():
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
                covered.update(id(p) for p in module.parameters(recurse=False))
    stale = [name for name, p in network.named_parameters() if id(p) not in covered]
    if stale:
        warnings.warn(
            f"{len(stale)} parameter(s) belong to modules without reset_parameters() and keep the values "
            f"NNI drew, so scores are not reproducible from the seed alone: {', '.join(stale[:5])}",
            RuntimeWarning,
            stacklevel=3,
        )


def _feature_layer(network: nn.Module, feature_layer: str | None) -> nn.Module | None:
    if feature_layer is None:
        return None
    modules = dict(network.named_modules())
    if feature_layer == "auto":
        layer = modules.get("classifier")
        return layer if isinstance(layer, nn.Linear) else None
    if not isinstance(feature_layer, str) or not isinstance(modules.get(feature_layer), nn.Linear):
        linears = [name for name, m in modules.items() if isinstance(m, nn.Linear)]
        raise ValueError(
            f"feature_layer must name an nn.Linear of the network (its input is taken as the features), "
            f"'auto' or None; got {feature_layer!r}; the network's nn.Linear modules are {linears}"
        )
    return modules[feature_layer]
