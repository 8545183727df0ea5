"""Condition number κ = λ_max / λ_min of a symmetric PSD kernel, with defined degenerate cases.

* The matrix is symmetrised and its eigenvalues taken in float64 (``eigvalsh``).
* NaN or infinite entries, λ_max <= 0 (a zero or negative matrix), and λ_min at or below
  the round-off floor ``n * eps * λ_max`` (singular to working precision, including
  slightly negative round-off eigenvalues) all give ``κ = inf``: the kernel is as badly
  conditioned as it can be. A :class:`DegenerateKernelWarning` names the architecture
  or batch (``label``) and the reason.

The result is therefore always a float in ``[1, inf]``: never NaN, never negative.
"""

from __future__ import annotations

import math
import warnings

import torch

__all__ = ["DegenerateKernelWarning", "condition_number", "kernel_eigenvalues"]


class DegenerateKernelWarning(RuntimeWarning):
    """A kernel was non-finite or singular, so its condition number was set to inf."""


def kernel_eigenvalues(matrix: torch.Tensor) -> torch.Tensor:
    """Ascending eigenvalues of the symmetrised ``matrix`` ([n, n]) in float64."""
    m = matrix.to(torch.float64)
    return torch.linalg.eigvalsh(0.5 * (m + m.T))


def condition_number(matrix: torch.Tensor, *, label: str = "kernel") -> float:
    """κ = λ_max / λ_min of ``matrix`` ([n, n]), in ``[1, inf]`` (see the module docstring)."""
    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"condition_number needs a square matrix, got shape {tuple(matrix.shape)} ({label})")
    if not torch.isfinite(matrix).all():
        warnings.warn(f"{label}: kernel has NaN or infinite entries; condition number set to inf",
                      DegenerateKernelWarning, stacklevel=2)
        return math.inf
    eig = kernel_eigenvalues(matrix)
    lam_min, lam_max = float(eig[0]), float(eig[-1])
    if lam_max <= 0.0:
        warnings.warn(f"{label}: kernel is zero or negative (λ_max = {lam_max:.3g}); condition number set to inf",
                      DegenerateKernelWarning, stacklevel=2)
        return math.inf
    floor = matrix.shape[0] * torch.finfo(torch.float64).eps * lam_max
    if lam_min <= floor:
        warnings.warn(
            f"{label}: kernel is singular to working precision (λ_min = {lam_min:.3g}, λ_max = {lam_max:.3g}); "
            "condition number set to inf",
            DegenerateKernelWarning, stacklevel=2,
        )
        return math.inf
    return lam_max / lam_min
