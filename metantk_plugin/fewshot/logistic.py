"""Multinomial logistic regression with an L2 penalty, fitted by L-BFGS in torch.

For features ``X [n, d]`` and labels ``y`` in ``0..K-1`` it minimises (scikit-learn's
``LogisticRegression(penalty='l2', C=C, multi_class='multinomial')`` objective)

    f(W, b) = C · Σ_i CE(W x_i + b, y_i) + ½ ‖W‖²,        W [K, d], b [K] (not penalised),

which is strictly convex in W. Several independent problems (one per episode) are fitted
at once by minimising the sum of their objectives, which is separable across them.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["fit_logistic_regression", "logistic_objective"]


def logistic_objective(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                       C: float) -> torch.Tensor:
    """The objective of each problem, ``[P]``, for ``weight [P, K, d]``, ``bias [P, K]``,
    ``x [P, n, d]`` and ``y [P, n]``."""
    logits = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
    data = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).sum(1)
    return C * data + 0.5 * weight.pow(2).sum(dim=(1, 2))


def fit_logistic_regression(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    *,
    C: float = 1.0,
    max_iter: int = 1000,
    tolerance: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit ``P`` problems ``x [P, n, d]``, ``y [P, n]`` (or one problem ``[n, d]``, ``[n]``)
    in float64; returns ``weight [P, K, d]`` and ``bias [P, K]`` (without the P axis for
    one problem). Stops when the gradient's largest entry is below ``tolerance``."""
    single = x.dim() == 2
    if single:
        x, y = x.unsqueeze(0), y.unsqueeze(0)
    if x.dim() != 3 or y.shape != x.shape[:2]:
        raise ValueError(f"need x [P, n, d] and y [P, n]; got {tuple(x.shape)} and {tuple(y.shape)}")
    if C <= 0:
        raise ValueError(f"C must be positive, got {C}")
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {int(y.min())}..{int(y.max())}")
    x64, y = x.detach().to(torch.float64), y.long()
    problems, _, dim = x64.shape
    weight = torch.zeros(problems, num_classes, dim, dtype=torch.float64, device=x.device, requires_grad=True)
    bias = torch.zeros(problems, num_classes, dtype=torch.float64, device=x.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, tolerance_grad=tolerance,
                                  tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = logistic_objective(weight, bias, x64, y, C).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    weight, bias = weight.detach().to(x.dtype), bias.detach().to(x.dtype)
    return (weight[0], bias[0]) if single else (weight, bias)
