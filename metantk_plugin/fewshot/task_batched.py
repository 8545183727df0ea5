"""The ``batched`` strategy of :mod:`~metantk_plugin.fewshot.maml`: the inner loop of every
task of a meta-batch at once, the query sets one task at a time.

For T tasks, θ the shared initial weights, α the inner learning rate (one step shown):

1. inner loop, batched: ``θ_t = θ - α ∇L_S^t(θ)`` for all t at once, ``vmap(grad)`` over the
   support sets ``[T, n_s, ...]``; the fast weights are ``[T, *shape]``, with the autograd
   graph back to θ for ``maml``, without it for ``fomaml``;
2. query sets, one task at a time on detached fast weights, so that each task's activations
   are freed before the next: ``v_t = ∇_{θ_t} L_Q^t(θ_t) / T``;
3. the meta-gradient: ``fomaml`` ``Σ_t v_t``; ``maml`` ``Σ_t (∂θ_t/∂θ)ᵀ v_t``, one backward
   pass through the batched inner loop.

In step 2, images and convolution weights run in channels_last memory format (oneDNN's
convolution backward is several times faster in it on CPU; in step 1, under vmap, it gains
nothing measurable and meets operations without a batching rule). The results are those of
``loop`` up to float32 rounding. Steps 1, 2 and 3 are ``torch.profiler`` ranges (named
after ``PROFILE_PREFIX``), so a profile shows where a meta-step spends its time.

Inside ``vmap``, the native batch_norm gives wrong second-order gradients (torch 2.x), so
in step 1 of ``maml`` the BatchNorm layers run as plain tensor operations: the same function
``(x - mean) / sqrt(var + eps) * weight + bias`` over the batch statistics, which vmap
differentiates correctly (folded into one affine map per channel, see ``_batch_norm``).
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.profiler import record_function

from metantk_plugin.kernels.ntk import PROFILE_PREFIX
from metantk_plugin.tasks import TaskBatch

Params = dict[str, torch.Tensor]
Adapt = Callable[[Params, torch.Tensor, torch.Tensor], Params]
"""``adapt(params, support_x, support_y) -> fast params`` for one task, written with ``torch.func.grad``."""
QueryLoss = Callable[[Params, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``query_loss(fast params, query_x, query_y) -> (loss, accuracy)`` for one task."""

__all__ = ["batched_accuracy", "batched_meta_gradient"]


def batched_meta_gradient(network: nn.Module, params: Params, tasks: TaskBatch, *, adapt: Adapt, query_loss: QueryLoss,
                          first_order: bool) -> tuple[Params, float, float]:
    """The meta-gradient of the mean query loss over ``tasks`` (steps 1-3 above), with the
    mean query loss and accuracy."""
    leaves = {name: p.detach().requires_grad_() for name, p in params.items()}
    with record_function(f"{PROFILE_PREFIX}inner loops"):
        fast = _adapt_all(network, leaves, tasks, adapt, second_order=not first_order)
    query_x, n_tasks = _channels_last(tasks.query_x), tasks.n_tasks
    v = {name: torch.empty_like(value) for name, value in fast.items()}
    loss_sum = accuracy_sum = 0.0
    with record_function(f"{PROFILE_PREFIX}query passes"):
        for t in range(n_tasks):
            weights = {name: _channels_last(value[t].detach()).requires_grad_() for name, value in fast.items()}
            loss, accuracy = query_loss(weights, query_x[t], tasks.query_y[t])
            grads = torch.autograd.grad(loss / n_tasks, list(weights.values()), allow_unused=True,
                                        materialize_grads=True)
            for name, grad in zip(weights, grads):
                v[name][t] = grad
            loss_sum += float(loss.detach())
            accuracy_sum += float(accuracy)
    if first_order:
        total = {name: g.sum(0) for name, g in v.items()}
    else:
        with record_function(f"{PROFILE_PREFIX}backward through the inner loops"):
            grads = torch.autograd.grad(list(fast.values()), list(leaves.values()), list(v.values()),
                                        allow_unused=True, materialize_grads=True)
        total = dict(zip(leaves, grads))
    return ({name: torch.empty_like(p).copy_(total[name]) for name, p in params.items()},  # the params' strides
            loss_sum / n_tasks, accuracy_sum / n_tasks)


def batched_accuracy(network: nn.Module, params: Params, tasks: TaskBatch, *, adapt: Adapt,
                     logits: Callable[[Params, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Query accuracy ``[T]`` of each task after its inner loop (step 1, then the queries)."""
    with torch.no_grad():
        fast = _adapt_all(network, {name: p.detach() for name, p in params.items()}, tasks, adapt,
                          second_order=False)
        query_x = _channels_last(tasks.query_x)
        return torch.stack([(logits({name: _channels_last(value[t]) for name, value in fast.items()},
                                    query_x[t]).argmax(-1) == tasks.query_y[t]).float().mean()
                            for t in range(tasks.n_tasks)])


def _adapt_all(network: nn.Module, params: Params, tasks: TaskBatch, adapt: Adapt, *, second_order: bool) -> Params:
    """Fast weights ``[T, *shape]`` of every task (step 1), differentiable in ``params``
    when ``second_order``."""
    with torch.enable_grad() if second_order else torch.no_grad(), _plain_batch_norm(network, second_order):
        try:
            return torch.func.vmap(lambda x, y: adapt(params, x, y), randomness="different")(
                tasks.support_x, tasks.support_y)
        except RuntimeError as error:
            raise RuntimeError(f"the batched strategy's inner loops under torch.func.vmap failed for this network "
                               f"({error}); strategy='loop' runs them one task at a time") from error


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """Convolution weights ``[O, C, h, w]`` copied into channels_last strides (set even where
    C = 1 makes both formats contiguous: oneDNN reads the format from the weights' strides),
    images ``[T, n, C, H, W]`` in channels_last format; other tensors as they are."""
    if x.dim() == 4:
        return torch.empty_like(x, memory_format=torch.channels_last).copy_(x)
    if x.dim() == 5:
        return x.flatten(0, 1).contiguous(memory_format=torch.channels_last).view(x.shape)
    return x


@contextlib.contextmanager
def _plain_batch_norm(network: nn.Module, enabled: bool) -> Iterator[None]:
    """Within the block, the BatchNorm layers of ``network`` compute batch normalisation over
    the batch statistics with plain tensor operations if ``enabled``; they must hold no
    running statistics (:func:`~metantk_plugin.fewshot.maml.use_batch_statistics`)."""
    layers = [m for m in network.modules() if isinstance(m, _BatchNorm)]
    if any(m.running_mean is not None for m in layers):
        raise ValueError("the batched strategy needs BatchNorm layers on batch statistics, without running "
                         "statistics (use_batch_statistics)")
    layers = layers if enabled else []
    for layer in layers:
        layer.forward = types.MethodType(_batch_norm, layer)
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward


def _batch_norm(layer: _BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """Batch normalisation over all dims but the channels (dim 1), folded into one affine map
    per channel: ``x * s + (b - mean * s)`` with ``s = weight / sqrt(var + eps)`` (two passes
    over ``x`` and a short autograd graph, where the textbook form takes four)."""
    dims = [0, *range(2, x.dim())]
    shape = [1, -1] + [1] * (x.dim() - 2)
    var, mean = torch.var_mean(x, dims, unbiased=False, keepdim=True)
    scale = torch.rsqrt(var + layer.eps)
    if layer.weight is not None:
        scale = scale * layer.weight.view(shape)
    shift = -mean * scale
    if layer.bias is not None:
        shift = shift + layer.bias.view(shape)
    return torch.addcmul(shift, x, scale)
