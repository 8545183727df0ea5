"""Pure tensor maths: empirical NTK backends, the MetaNTK algebra and condition numbers."""

import warnings

from metantk_plugin import network_adapter as _network_adapter
from metantk_plugin.kernels.condition import DegenerateKernelWarning, condition_number, kernel_eigenvalues
from metantk_plugin.kernels.metantk import inner_loop_operator, metantk_from_kernels
from metantk_plugin.kernels.ntk import BACKENDS, NTKResult, empirical_ntk, kernel_modules

__all__ = [
    "BACKENDS",
    "DegenerateKernelWarning",
    "NTKResult",
    "condition_number",
    "empirical_ntk",
    "inner_loop_operator",
    "kernel_eigenvalues",
    "kernel_modules",
    "metantk_from_kernels",
]


def __getattr__(name: str):
    # deprecated for one release: split_output adapts networks, so it moved to network_adapter
    if name == "split_output":
        warnings.warn("metantk_plugin.kernels.split_output is deprecated; import it from "
                      "metantk_plugin.network_adapter", DeprecationWarning, stacklevel=2)
        return _network_adapter.split_output
    raise AttributeError(f"module 'metantk_plugin.kernels' has no attribute {name!r}")
