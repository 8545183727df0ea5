"""The MetaNTK proxy: condition number of the MetaNTK of a network on few-shot tasks.

A fresh linear head with ``ways`` outputs is attached to the network's features,
drawn from a seeded generator with PyTorch's default ``nn.Linear`` law
(U(-1/√D, 1/√D) for weight and bias, D = feature dimension), so the same seed gives
the same head on every device and for every network of the same width. Then

    Θ = empirical NTK of g(x) = Σ_k head(f(x))_k   over body and head weights
    K = Θ (MAML)  or  the head's share of Θ, ways·F Fᵀ (ANIL)
    Φ = metantk_from_kernels(Θ, K, ...),   score = λ_max(Φ) / λ_min(Φ)   (lower is better)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from metantk_plugin._deprecation import renamed
from metantk_plugin.kernels import (
    BACKENDS,
    DegenerateKernelWarning,
    condition_number,
    empirical_ntk,
    kernel_eigenvalues,
    metantk_from_kernels,
)
from metantk_plugin.network_adapter import split_output
from metantk_plugin.proxies._network import device_dtype
from metantk_plugin.task_spec import check_optional_positive_int
from metantk_plugin.tasks import TaskBatch

__all__ = ["METANTK_ALGORITHMS", "MetaNTK", "MetaNTKResult", "seeded_head"]

METANTK_ALGORITHMS = ("maml", "anil")
"""The meta-learning algorithms whose kernel MetaNTK forms: K = Θ (maml) or the head's share of Θ (anil)."""
__getattr__ = renamed(__name__, {"ALGORITHMS": f"{__name__}.METANTK_ALGORITHMS"})


@dataclass
class MetaNTKResult:
    """``condition_number`` in [1, inf]; ``eigenvalues`` ascending [n_tasks*n_query] and
    ``matrix`` (Φ, float64) — both None when the kernel was non-finite."""

    condition_number: float
    eigenvalues: torch.Tensor | None
    matrix: torch.Tensor | None


def seeded_head(in_features: int, out_features: int, *, seed: int,
                device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> nn.Linear:
    """``nn.Linear(in_features, out_features)`` with PyTorch's default law drawn from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(in_features)
    head = nn.Linear(in_features, out_features)
    with torch.no_grad():
        head.weight.copy_(torch.rand(out_features, in_features, generator=gen, dtype=torch.float64) * 2 * bound - bound)
        head.bias.copy_(torch.rand(out_features, generator=gen, dtype=torch.float64) * 2 * bound - bound)
    return head.to(device=device, dtype=dtype)


class MetaNTK:
    """MetaNTK condition number (lower is better).

    Settings: ``algorithm`` maml|anil; ``inner_lr_time`` t (inner learning rate times
    training time, ``math.inf`` for the converged limit); ``reg`` the ridge r added to
    K(S,S); ``ways`` head outputs (default: the tasks' ways); ``include_bias`` adds the
    biases to Θ; ``seed`` draws the head; ``backend`` of :func:`empirical_ntk`.
    """

    def __init__(self, algorithm: str = "maml", inner_lr_time: float = math.inf, reg: float = 1e-3,
                 ways: int | None = None, include_bias: bool = False, seed: int = 0, backend: str = "gram"):
        if algorithm not in METANTK_ALGORITHMS:
            raise ValueError(f"algorithm must be one of {METANTK_ALGORITHMS}, got {algorithm!r}")
        if not (inner_lr_time > 0):
            raise ValueError(f"inner_lr_time must be > 0 (math.inf for the converged limit), got {inner_lr_time!r}")
        if not (reg >= 0) or math.isinf(reg):
            raise ValueError(f"reg must be a finite value >= 0, got {reg!r}")
        check_optional_positive_int("ways", ways)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.algorithm = algorithm
        self.inner_lr_time = float(inner_lr_time)
        self.reg = float(reg)
        self.ways = ways
        self.include_bias = include_bias
        self.seed = seed
        self.backend = backend

    def __repr__(self) -> str:
        return (f"MetaNTK(algorithm={self.algorithm!r}, inner_lr_time={self.inner_lr_time}, reg={self.reg}, "
                f"ways={self.ways}, include_bias={self.include_bias}, seed={self.seed}, backend={self.backend!r})")

    def evaluate(self, network: nn.Module, tasks: TaskBatch, *, label: str = "network") -> MetaNTKResult:
        """Φ, its ascending eigenvalues and its condition number for ``network`` on ``tasks``."""
        if not isinstance(tasks, TaskBatch):
            raise TypeError(f"tasks must be a TaskBatch, got {type(tasks).__name__}")
        device, dtype = device_dtype(network)
        x = tasks.inputs().to(device=device, dtype=dtype)
        with torch.no_grad():
            features, _ = split_output(network(x[:1]))
        head = seeded_head(features.flatten(1).shape[1], self.ways or tasks.ways, seed=self.seed,
                           device=device, dtype=dtype)
        kernels = empirical_ntk(network, x, head=head, include_bias=self.include_bias, backend=self.backend)
        k = kernels.ntk if self.algorithm == "maml" else kernels.head_kernel
        if not (torch.isfinite(kernels.ntk).all() and torch.isfinite(k).all()):
            warnings.warn(f"{label}: NTK has NaN or infinite entries; MetaNTK condition number set to inf",
                          DegenerateKernelWarning, stacklevel=2)
            return MetaNTKResult(math.inf, None, None)
        with torch.autocast(device.type, enabled=False):  # the kernel algebra stays in the network's dtype
            phi = metantk_from_kernels(kernels.ntk, k, n_tasks=tasks.n_tasks, n_query=tasks.n_query,
                                       n_support=tasks.n_support, inner_lr_time=self.inner_lr_time, reg=self.reg)
            return MetaNTKResult(condition_number(phi, label=label), kernel_eigenvalues(phi), phi)

    def condition_number(self, network: nn.Module, tasks: TaskBatch, *, label: str = "network") -> float:
        """The MetaNTK condition number of ``network`` on ``tasks`` (lower is better)."""
        return self.evaluate(network, tasks, label=label).condition_number
