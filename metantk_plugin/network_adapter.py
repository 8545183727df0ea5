"""What the package expects of a network, and the adapters that make any network fit.

Outputs. A network returns logits ``[N, k]`` or a pair ``(features [N, D], logits [N, k])``
(:func:`split_output`); :class:`FeaturesAndLogits` makes a logits-only network return the
pair, its features being the input of a linear layer.

Normalisation: the vocabulary is :mod:`metantk_plugin.normalisation_names` (re-exported
here); a network's BatchNorm is replaced by a mode of :data:`KERNEL_NORMS` with
:func:`replace_batchnorm`.

The linear head: ``logits = head(features)``, the layer ANIL adapts. A network declares
it with the attribute ``head_name``, the head's qualified module name (the package's own
networks set ``head_name = "classifier"``); :func:`head_name` reads it, and guesses it
from common attribute names for other networks.

This module imports only torch and the vocabulary, so every layer of the package,
``kernels`` included, may import it.
"""

from __future__ import annotations

import torch
from torch import nn

from metantk_plugin.normalisation_names import KERNEL_NORMS, NETWORK_NORMS, NORMS

__all__ = [
    "KERNEL_NORMS",
    "NETWORK_NORMS",
    "NORMS",
    "NORM_LAYERS",
    "FeaturesAndLogits",
    "group_count",
    "group_norm_like",
    "head_name",
    "replace_batchnorm",
    "split_output",
    "strip_normalisation",
]

NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)
"""Every kind of normalisation layer, as :func:`strip_normalisation` removes them."""

_GUESSED_HEAD_NAMES = ("classifier", "head", "fc", "linear", "last_linear")

_MAX_GROUPS = 16


# ---------------------------------------------------------------------------- outputs
def split_output(out: torch.Tensor | tuple | list) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features, logits)`` from a network output that is a tensor (then both are that
    tensor) or a (features, logits) pair."""
    if isinstance(out, torch.Tensor):
        return out, out
    if isinstance(out, (tuple, list)) and len(out) == 2:
        features, logits = out
        if isinstance(features, (tuple, list)):  # MetaNAS/RFS style ([features], logits)
            features = features[-1]
        return features, logits
    raise TypeError(
        "a network must return a tensor or a (features, logits) pair; "
        f"got {type(out).__name__}"
    )


class FeaturesAndLogits(nn.Module):
    """``x -> (features [N, D], logits [N, k])`` around ``network``: the features are the
    input of ``feature_layer`` (which must run once per forward pass), or with
    ``feature_layer=None`` of the last ``nn.Linear`` the network calls, flattened to
    ``[N, D]``; the logits are the network's own."""

    def __init__(self, network: nn.Module, feature_layer: nn.Module | None = None):
        super().__init__()
        self.network = network
        self._exact = feature_layer is not None
        self._layers = [feature_layer] if self._exact else [m for m in network.modules() if isinstance(m, nn.Linear)]
        if not self._layers:
            raise ValueError(
                f"the {type(network).__name__} has no registered nn.Linear layer, so there are no penultimate "
                "features for MetaNTK's head; for a NASLib graph, call graph.parse() after graph.set_spec(...)"
            )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        captured: list[torch.Tensor] = []

        def capture(module: nn.Module, inputs: tuple) -> None:
            captured.append(inputs[0])

        handles = [layer.register_forward_pre_hook(capture) for layer in self._layers]
        try:
            _, logits = split_output(self.network(x))
        finally:
            for handle in handles:
                handle.remove()
        if self._exact and len(captured) != 1:
            raise RuntimeError(f"the feature layer ran {len(captured)} times in one forward pass; expected once")
        if not captured:
            raise ValueError(f"the {type(self.network).__name__} called none of its nn.Linear layers in forward")
        return captured[-1].flatten(1), logits


# ---------------------------------------------------------------------------- normalisation
def group_count(channels: int) -> int:
    """The largest divisor of ``channels`` not above 16."""
    return max(g for g in range(1, min(_MAX_GROUPS, channels) + 1) if channels % g == 0)


def group_norm_like(bn: nn.modules.batchnorm._BatchNorm) -> nn.GroupNorm:
    """A GroupNorm over the same channels, eps and affine parameters (copied) as ``bn``."""
    channels = bn.num_features
    gn = nn.GroupNorm(group_count(channels), channels, eps=bn.eps, affine=bn.affine)
    if bn.affine:
        with torch.no_grad():
            gn.weight.copy_(bn.weight)
            gn.bias.copy_(bn.bias)
        gn = gn.to(bn.weight.device)
    return gn


_BATCHNORM_REPLACEMENTS = {"group": group_norm_like, "eval": lambda bn: bn.eval(), "none": lambda bn: nn.Identity()}


def replace_batchnorm(network: nn.Module, norm: str) -> nn.Module:
    """Replace every BatchNorm of ``network``, in place, by the layer ``norm`` of
    :data:`KERNEL_NORMS` names (GroupNorm with the BatchNorm's affine parameters, the
    BatchNorm in evaluation mode, or the identity); returns ``network``."""
    if norm not in KERNEL_NORMS:
        raise ValueError(f"norm must be one of {KERNEL_NORMS}, got {norm!r}")
    _replace_layers(network, nn.modules.batchnorm._BatchNorm, _BATCHNORM_REPLACEMENTS[norm])
    return network


def strip_normalisation(network: nn.Module) -> nn.Module:
    """Replace every normalisation layer of ``network`` (:data:`NORM_LAYERS`), in place,
    by the identity; returns ``network``."""
    _replace_layers(network, NORM_LAYERS, lambda layer: nn.Identity())
    return network


def _replace_layers(module: nn.Module, kinds, replacement) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, kinds):
            setattr(module, name, replacement(child))
        else:
            _replace_layers(child, kinds, replacement)


# ---------------------------------------------------------------------------- the linear head
def head_name(network: nn.Module) -> str:
    """The qualified module name of the ``nn.Linear`` head of ``network``: the one it
    declares as ``network.head_name``; else (a guess, for user networks) the first of
    ``classifier``, ``head``, ``fc``, ``linear``, ``last_linear`` that is an ``nn.Linear``,
    else its last ``nn.Linear``. A ValueError when the declaration names no ``nn.Linear``
    or the network has none."""
    linears = [name for name, m in network.named_modules() if isinstance(m, nn.Linear)]
    declared = getattr(network, "head_name", None)
    if declared is not None:
        if not isinstance(declared, str) or declared not in linears:
            raise ValueError(f"the {type(network).__name__} declares head_name={declared!r}, which names none of "
                             f"its nn.Linear modules {linears}")
        return declared
    if not linears:
        raise ValueError("ANIL needs a linear head (an nn.Linear module); the network has none")
    return next((name for name in _GUESSED_HEAD_NAMES if name in linears), linears[-1])
