"""The MetaNTK algebra: from a base kernel Θ and an inner-loop kernel K to the MetaNTK Φ.

Samples are ordered as all queries task by task, then all supports task by task;
per task there are ``n_query`` queries Q_i and ``n_support`` supports S_i. For task i

    T_i = (K(S_i,S_i) + r I)^+ (I - exp(-t K(S_i,S_i)))        (t = inf drops the exponential)
    A_i = K(Q_i,S_i) T_i                                          [n_query, n_support]

and block (i, j) of Φ (``[n_tasks*n_query]`` square) is

    Φ_ij = Θ(Q_i,Q_j) - A_i Θ(S_i,Q_j) - Θ(Q_i,S_j) A_jᵀ + A_i Θ(S_i,S_j) A_jᵀ,

i.e. Φ = M Θ Mᵀ with M = [I | -blockdiag(A_1..A_T)], symmetric PSD by construction.
K = Θ gives MAML's MetaNTK; K = the head kernel gives ANIL's. Everything is computed in
float64 on the kernels' device, batched over tasks.
"""

from __future__ import annotations

import math

import torch

__all__ = ["metantk_from_kernels", "inner_loop_operator"]


def _check_kernel(name: str, kernel: torch.Tensor, n: int) -> None:
    if not isinstance(kernel, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(kernel).__name__}")
    if kernel.shape != (n, n):
        raise ValueError(
            f"{name} has shape {tuple(kernel.shape)}, expected ({n}, {n}) = n_tasks*(n_query+n_support) square"
        )
    if not torch.isfinite(kernel).all():
        bad = int((~torch.isfinite(kernel)).sum())
        raise ValueError(f"{name} holds {bad} NaN or infinite entries: the network's gradients diverged")


def inner_loop_operator(k_ss: torch.Tensor, *, inner_lr_time: float, reg: float) -> torch.Tensor:
    """T = (K_SS + rI)^+ (I - exp(-t K_SS)) for a batch of support kernels ``[T, S, S]``.

    Both factors are functions of the symmetric K_SS, so one eigendecomposition
    K_SS = U diag(λ) Uᵀ gives T = U diag(f(λ)) Uᵀ with f(λ) = (1 - e^{-tλ}) / (λ + r),
    and f = 0 where λ + r is zero to working precision (the pseudo-inverse).
    """
    k_ss = 0.5 * (k_ss + k_ss.transpose(-1, -2))
    lam, u = torch.linalg.eigh(k_ss)
    shifted = lam + reg
    scale = shifted.abs().amax(-1, keepdim=True)
    cutoff = scale * k_ss.shape[-1] * torch.finfo(k_ss.dtype).eps
    inv = torch.where(shifted.abs() > cutoff, 1.0 / torch.where(shifted == 0, 1.0, shifted), 0.0)
    if math.isinf(inner_lr_time):
        f = inv
    else:
        f = -torch.expm1(-inner_lr_time * lam) * inv
    return (u * f.unsqueeze(-2)) @ u.transpose(-1, -2)


def metantk_from_kernels(
    ntk: torch.Tensor,
    k: torch.Tensor,
    *,
    n_tasks: int,
    n_query: int,
    n_support: int,
    inner_lr_time: float = math.inf,
    reg: float = 1e-3,
) -> torch.Tensor:
    """The MetaNTK Φ, ``[n_tasks*n_query, n_tasks*n_query]`` float64, from the base kernel
    ``ntk`` (Θ) and the inner-loop kernel ``k`` (Θ for MAML, the head kernel for ANIL),
    both ``[n_tasks*(n_query+n_support)]`` square in queries-then-supports order."""
    for name, value in (("n_tasks", n_tasks), ("n_query", n_query), ("n_support", n_support)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not (inner_lr_time > 0):
        raise ValueError(f"inner_lr_time must be > 0 (math.inf for the converged limit), got {inner_lr_time!r}")
    if not (reg >= 0) or math.isinf(reg):
        raise ValueError(f"reg must be a finite value >= 0, got {reg!r}")
    n = n_tasks * (n_query + n_support)
    _check_kernel("ntk", ntk, n)
    _check_kernel("k", k, n)
    theta = ntk.to(torch.float64)
    theta = 0.5 * (theta + theta.T)
    kk = k.to(torch.float64)
    nq = n_tasks * n_query
    tq, ts = n_tasks, n_support

    supports = torch.arange(nq, n, device=theta.device).view(tq, ts)
    queries = torch.arange(nq, device=theta.device).view(tq, n_query)
    k_ss = kk[supports.unsqueeze(-1), supports.unsqueeze(-2)]  # [T, S, S]
    k_qs = kk[queries.unsqueeze(-1), supports.unsqueeze(-2)]  # [T, Q, S]
    a = k_qs @ inner_loop_operator(k_ss, inner_lr_time=inner_lr_time, reg=reg)  # [T, Q, S]

    theta_qq = theta[:nq, :nq]
    theta_sq = theta[nq:, :nq].reshape(tq, ts, nq)  # rows grouped by task
    theta_ss = theta[nq:, nq:].reshape(tq, ts, tq, ts)
    a_theta_sq = (a @ theta_sq).reshape(nq, nq)  # A_i Θ(S_i, Q_j)
    a_theta_ss_a = torch.einsum("iqs,isjt,jpt->iqjp", a, theta_ss, a).reshape(nq, nq)
    phi = theta_qq - a_theta_sq - a_theta_sq.T + a_theta_ss_a
    return 0.5 * (phi + phi.T)
