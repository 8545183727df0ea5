"""Pure tensor maths: empirical NTK backends, the MetaNTK algebra and condition numbers."""

from metantk_plugin._deprecation import renamed
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

# split_output adapts networks, so it moved to network_adapter
__getattr__ = renamed(__name__, {"split_output": "metantk_plugin.network_adapter.split_output"})
