"""Architecture logits of a supernet edge, with the official MetaNTK-NAS / TE-NAS semantics.

An edge holds ``n_ops`` operations and a logit row ``alpha [n_ops]``; with
``w = softmax(alpha)`` it computes ``Σ_{o: w_o > 0.01} w_o · op_o(x)``. An operation is
removed by setting its logit to ``-INF_ALPHA`` (-1000), which re-weights the survivors
(k equal survivors get 1/k each); an edge whose logits sum to ``-1000 * n_ops`` or less
is removed altogether and contributes 0.
"""

from __future__ import annotations

import torch

__all__ = ["ACTIVE_THRESHOLD", "INF_ALPHA", "active_operations", "mixing_plan"]

INF_ALPHA = 1000.0
"""The logit magnitude that removes an operation (the official ``INF``)."""
ACTIVE_THRESHOLD = 0.01
"""An operation runs when its softmax weight exceeds this."""


def active_operations(alpha: torch.Tensor) -> list[list[int]]:
    """Per edge (row of ``alpha [edges, n_ops]``) the indices of the operations that run;
    an empty list for a removed edge."""
    alpha = alpha.detach()
    weights = torch.softmax(alpha, dim=-1) > ACTIVE_THRESHOLD
    removed = alpha.sum(-1) <= -INF_ALPHA * alpha.shape[-1]
    return [[] if gone else [o for o, on in enumerate(row) if on]
            for gone, row in zip(removed.tolist(), weights.tolist())]


def mixing_plan(alpha: torch.Tensor) -> list[list[tuple[int, torch.Tensor]]]:
    """Per edge, ``(operation index, softmax weight)`` of the operations that run."""
    weights = torch.softmax(alpha, dim=-1)
    return [[(o, weights[e, o]) for o in ops] for e, ops in enumerate(active_operations(alpha))]
