"""Deprecated: the normalisation helpers are now in :mod:`metantk_plugin.network_adapter`
(``batchnorm_to_groupnorm(m)`` is ``replace_batchnorm(m, "group")``). The old imports keep
working, with a DeprecationWarning, for one release."""

from __future__ import annotations

import warnings

from torch import nn

from metantk_plugin.network_adapter import group_count, group_norm_like, replace_batchnorm

warnings.warn("metantk_plugin.norms is deprecated; import metantk_plugin.network_adapter instead",
              DeprecationWarning, stacklevel=2)

__all__ = ["batchnorm_to_groupnorm", "group_count", "group_norm_like"]


def batchnorm_to_groupnorm(module: nn.Module) -> None:
    """``replace_batchnorm(module, "group")``: every BatchNorm becomes :func:`group_norm_like`, in place."""
    replace_batchnorm(module, "group")
