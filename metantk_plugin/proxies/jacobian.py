"""Input-Jacobian and activation-pattern proxies: jacov, epe_nas (Jacobian correlations)
and nwot (NASWOT, the log-determinant of the ReLU-code kernel).

All see every task image (queries then supports) on a private copy of the network in
the caller's mode. With f the network's logits and x_n the n-th image,

    J_n   = ∂(Σ_k f_k(x_n)) / ∂x_n, flattened;          C = corrcoef(J)  [N, N]
    jacov = −Σ_i [log(λ_i + 1e-5) + 1/(λ_i + 1e-5)],    λ = eigenvalues of C
    epe_nas: per label c, s_c = Σ log(|corrcoef(J_c)| + 1e-5) (divided by the number of
             rows when there are more than 100 labels); score = Σ_c |s_c|, or for more than
             100 labels the mean over label pairs of |s_c − s_c'|
    nwot  = log|det K|,  K = Σ_ReLU [c cᵀ + (1 − c)(1 − c)ᵀ],  c_n = 1[ReLU input > 0]

Higher is better for all three. A Jacobian row that is constant (an image the output
does not depend on) makes the correlation undefined: jacov and epe_nas are then NaN.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from metantk_plugin.proxies._network import forward_with_hooks, logits_of, task_data
from metantk_plugin.proxies.registry import register_proxy
from metantk_plugin.tasks import TaskBatch

__all__ = ["epe_nas", "input_jacobian", "jacov", "nwot"]

_EPS = 1e-5
_MANY_CLASSES = 100


def input_jacobian(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Rows ``J_n = ∂(Σ_k f_k(x_n))/∂x_n`` flattened, ``[N, C*H*W]`` float64 (one batched backward)."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = logits_of(network, x)
        (grad,) = torch.autograd.grad(out.sum(), x, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(x)
    return grad.flatten(1).double()


@register_proxy("jacov", higher_is_better=True)
def jacov(network: nn.Module, tasks: TaskBatch, *, seed: int = 0) -> float:
    """Jacobian covariance: −Σ[log(λ+ε) + 1/(λ+ε)] over the eigenvalues of corrcoef(J) (higher is better)."""
    x, _ = task_data(network, tasks)
    corr = torch.corrcoef(input_jacobian(network, x))
    if not torch.isfinite(corr).all():
        return float("nan")
    lam = torch.linalg.eigvalsh(corr)
    return float(-(torch.log(lam + _EPS) + 1.0 / (lam + _EPS)).sum())


@register_proxy("epe_nas", higher_is_better=True)
def epe_nas(network: nn.Module, tasks: TaskBatch, *, seed: int = 0) -> float:
    """EPE-NAS: per-label Jacobian correlation scores, combined over labels (higher is better)."""
    x, y = task_data(network, tasks)
    jac = input_jacobian(network, x)
    n_classes = tasks.ways
    per_class = []
    for c in range(n_classes):
        rows = jac[y == c]
        corr = torch.corrcoef(rows).reshape(rows.shape[0], rows.shape[0])
        s = torch.log(corr.abs() + _EPS).sum()
        if n_classes > _MANY_CLASSES:
            s = s / rows.shape[0]
        per_class.append(s)
    scores = torch.stack(per_class)
    if n_classes <= _MANY_CLASSES:
        return float(scores.abs().sum())
    pairs = [abs(a - b) for a, b in itertools.combinations(scores.tolist(), 2)]
    return float(sum(pairs) / len(pairs))


@register_proxy("nwot", higher_is_better=True)
def nwot(network: nn.Module, tasks: TaskBatch, *, seed: int = 0) -> float:
    """NASWOT: log|det K| of the Hamming-similarity kernel of the ReLU codes (higher is better)."""
    x, _ = task_data(network, tasks)
    relus = [m for m in network.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError("the network has no nn.ReLU module, so it has no activation codes for nwot")
    n = x.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64, device=x.device)

    def hook(module, inputs, output):
        nonlocal kernel
        code = (output > 0).reshape(n, -1).double()
        kernel = kernel + code @ code.T + (1.0 - code) @ (1.0 - code).T

    forward_with_hooks(network, relus, hook, x)
    return float(torch.linalg.slogdet(kernel).logabsdet)
