"""Two of NASLib's built-in measures, one of each return convention: ``grad_norm`` returns
a per-layer list of tensors (reduced by ``sum_arr``), ``jacov`` a float (special-cased)."""

from __future__ import annotations

import numpy as np
import torch

from naslib_standin_core.p_utils import get_layer_metric_array
from naslib_standin_core.registry import measure


def get_grad_norm_arr(net, inputs, targets, loss_fn, split_data=1, skip_grad=False):
    """Per-layer ‖∂L/∂W‖ of every Conv2d and Linear layer."""
    net.zero_grad()
    n = inputs.shape[0]
    for sp in range(split_data):
        st, en = sp * n // split_data, (sp + 1) * n // split_data
        outputs = net.forward(inputs[st:en])
        loss = loss_fn(outputs, targets[st:en])
        loss.backward()
    return get_layer_metric_array(
        net,
        lambda layer: layer.weight.grad.norm() if layer.weight.grad is not None else torch.zeros_like(layer.weight),
        mode="param",
    )


def compute_jacob_cov(net, inputs, targets, split_data=1, loss_fn=None):
    """−Σ log(λ+k) + 1/(λ+k) over the eigenvalues λ of the input-Jacobian correlation."""
    try:
        net.zero_grad()
        inputs.requires_grad_(True)
        y = net(inputs)
        y.backward(torch.ones_like(y))
        jacobs = inputs.grad.detach().reshape(inputs.size(0), -1).cpu().numpy()
        eigenvalues, _ = np.linalg.eig(np.corrcoef(jacobs))
        k = 1e-5
        return -np.sum(np.log(eigenvalues + k) + 1.0 / (eigenvalues + k))
    except Exception as e:  # NASLib prints the error and scores NaN
        print(e)
        return np.nan


def load_all():
    """Register the built-in measures (NASLib imports one module per measure)."""
    measure("grad_norm", bn=True)(get_grad_norm_arr)
    measure("jacov", bn=True)(compute_jacob_cov)
