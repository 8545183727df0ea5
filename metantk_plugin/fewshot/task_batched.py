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

Threads: one task's passes are too small to split well over several threads, but the tasks
are independent (on Omniglot's Conv-4 with 2 threads of a 2-core CPU, in runs minutes apart:
1.85x one thread's speed this way, against 1.3-1.6x for learn2learn's per-task loop). So on CPU
with k = torch's intra-op thread count > 1, the meta-batch is cut into k contiguous chunks
of tasks, and steps 1-3 run on each chunk on a worker thread of its own, with one intra-op
thread and its own copy of the network (``functional_call`` swaps a module's tensors in
place, so two threads cannot share one module); the chunks' meta-gradients are summed.
Each chunk's result does not depend on k, so k changes the meta-gradient only by float
rounding in that sum and in vmap's batching. torch.profiler sees only the calling thread, so
profile on one thread. A network that cannot be deep-copied runs on one thread, as does
anything off the CPU. Random layers (dropout) draw from torch's global generator in the
order the threads reach them.

Inside ``vmap``, the native batch_norm gives wrong second-order gradients (torch 2.x), so
in step 1 of ``maml`` the BatchNorm layers run as plain tensor operations: the same function
``(x - mean) / sqrt(var + eps) * weight + bias`` over the batch statistics, which vmap
differentiates correctly (folded into one affine map per channel, see ``_batch_norm``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import functools
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.profiler import record_function

from metantk_plugin.kernels.ntk import PROFILE_PREFIX
from metantk_plugin.tasks import TaskBatch

Params = dict[str, torch.Tensor]
Adapt = Callable[[nn.Module, Params, torch.Tensor, torch.Tensor], Params]
"""``adapt(network, params, support_x, support_y) -> fast params`` for one task, written with
``torch.func.grad``; ``network`` is the network or a copy of it (one per worker thread)."""
QueryLoss = Callable[[nn.Module, Params, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``query_loss(network, fast params, query_x, query_y) -> (loss, accuracy)`` for one task,
``network`` as in :data:`Adapt`."""
Logits = Callable[[nn.Module, Params, torch.Tensor], torch.Tensor]
"""``logits(network, fast params, x) -> logits``, ``network`` as in :data:`QueryLoss`."""
Result = TypeVar("Result")

__all__ = ["batched_accuracy", "batched_meta_gradient", "on_worker_threads"]


def batched_meta_gradient(network: nn.Module, params: Params, tasks: TaskBatch, *, adapt: Adapt, query_loss: QueryLoss,
                          first_order: bool) -> tuple[Params, float, float]:
    """The meta-gradient of the mean query loss over ``tasks`` (steps 1-3 above, per chunk of
    tasks), with the mean query loss and accuracy."""
    partials = _for_each_chunk(network, tasks, lambda replica, chunk: _chunk_meta_gradient(
        replica, params, chunk, tasks.n_tasks, adapt=adapt, query_loss=query_loss, first_order=first_order))
    total = {name: sum(grads[name] for grads, _, _ in partials) for name in params}
    return ({name: torch.empty_like(p).copy_(total[name]) for name, p in params.items()},  # the params' strides
            sum(loss for _, loss, _ in partials) / tasks.n_tasks,
            sum(accuracy for _, _, accuracy in partials) / tasks.n_tasks)


def batched_accuracy(network: nn.Module, params: Params, tasks: TaskBatch, *, adapt: Adapt,
                     logits: Logits) -> torch.Tensor:
    """Query accuracy ``[T]`` of each task after its inner loop (step 1, then the queries)."""
    def chunk_accuracy(replica: nn.Module, chunk: TaskBatch) -> torch.Tensor:
        with torch.no_grad():
            fast = _adapt_all(replica, {name: p.detach() for name, p in params.items()}, chunk, adapt,
                              second_order=False)
            query_x = _channels_last(chunk.query_x)
            return torch.stack([(logits(replica, {name: _channels_last(value[t]) for name, value in fast.items()},
                                        query_x[t]).argmax(-1) == chunk.query_y[t]).float().mean()
                                for t in range(chunk.n_tasks)])

    return torch.cat(_for_each_chunk(network, tasks, chunk_accuracy))


def _chunk_meta_gradient(network: nn.Module, params: Params, tasks: TaskBatch, n_total: int, *, adapt: Adapt,
                         query_loss: QueryLoss, first_order: bool) -> tuple[Params, float, float]:
    """Steps 1-3 on the tasks of one chunk: their share of the meta-gradient (each query loss
    divided by ``n_total``, the tasks of the whole meta-batch), and the sums of their query
    losses and accuracies."""
    leaves = {name: p.detach().requires_grad_() for name, p in params.items()}
    with record_function(f"{PROFILE_PREFIX}inner loops"):
        fast = _adapt_all(network, leaves, tasks, adapt, second_order=not first_order)
    query_x = _channels_last(tasks.query_x)
    v = {name: torch.empty_like(value) for name, value in fast.items()}
    loss_sum = accuracy_sum = 0.0
    with record_function(f"{PROFILE_PREFIX}query passes"):
        for t in range(tasks.n_tasks):
            weights = {name: _channels_last(value[t].detach()).requires_grad_() for name, value in fast.items()}
            loss, accuracy = query_loss(network, weights, query_x[t], tasks.query_y[t])
            grads = torch.autograd.grad(loss / n_total, list(weights.values()), allow_unused=True,
                                        materialize_grads=True)
            for name, grad in zip(weights, grads):
                v[name][t] = grad
            loss_sum += float(loss.detach())
            accuracy_sum += float(accuracy)
    if first_order:
        return {name: g.sum(0) for name, g in v.items()}, loss_sum, accuracy_sum
    with record_function(f"{PROFILE_PREFIX}backward through the inner loops"):
        grads = torch.autograd.grad(list(fast.values()), list(leaves.values()), list(v.values()),
                                    allow_unused=True, materialize_grads=True)
    return dict(zip(leaves, grads)), loss_sum, accuracy_sum


def _for_each_chunk(network: nn.Module, tasks: TaskBatch,
                    run: Callable[[nn.Module, TaskBatch], Result]) -> list[Result]:
    """``[run(network, tasks)]``, or on CPU with k = torch's intra-op thread count > 1,
    ``run(replica i, chunk i)`` for k contiguous chunks of the tasks, on k worker threads of
    one intra-op thread each, replica 0 being ``network`` and the others deep copies of it."""
    workers = min(torch.get_num_threads(), tasks.n_tasks)
    if workers > 1 and tasks.support_x.device.type == "cpu":
        replicas = _replicas(network, workers)
        if replicas:
            bounds = [i * tasks.n_tasks // workers for i in range(workers + 1)]
            chunks = [TaskBatch(tasks.support_x[a:b], tasks.support_y[a:b], tasks.query_x[a:b], tasks.query_y[a:b],
                                tasks.ways) for a, b in zip(bounds, bounds[1:])]
            return on_worker_threads([functools.partial(run, replica, chunk)
                                      for replica, chunk in zip(replicas, chunks)])
    return [run(network, tasks)]


def _replicas(network: nn.Module, count: int) -> list[nn.Module]:
    """``network`` and ``count - 1`` deep copies of it, or [] (with a warning) if it cannot be copied."""
    try:
        return [network, *(copy.deepcopy(network) for _ in range(count - 1))]
    except Exception as error:  # noqa: BLE001 - any failure of deepcopy means: one thread, as before
        warnings.warn(f"the batched strategy runs its tasks on one thread: the network cannot be deep-copied "
                      f"for its worker threads ({type(error).__name__}: {error})", stacklevel=5)
        return []


def on_worker_threads(calls: Sequence[Callable[[], Result]]) -> list[Result]:
    """``[call() for call in calls]``, each call on a worker thread of its own with one
    intra-op thread (torch's thread count is per thread); torch's setting is restored
    afterwards, since setting a thread's own count sets torch's process-wide default too."""
    threads = torch.get_num_threads()

    def single_threaded(call: Callable[[], Result]) -> Result:
        torch.get_num_threads()  # torch sets a new thread's count from its default on first use: let it, then
        torch.set_num_threads(1)  # override it, so that no other thread's change of the default can reach this one
        return call()

    try:
        with concurrent.futures.ThreadPoolExecutor(len(calls), thread_name_prefix="metantk-tasks") as pool:
            return list(pool.map(single_threaded, calls))
    finally:
        torch.set_num_threads(threads)


def _adapt_all(network: nn.Module, params: Params, tasks: TaskBatch, adapt: Adapt, *, second_order: bool) -> Params:
    """Fast weights ``[T, *shape]`` of every task (step 1), differentiable in ``params``
    when ``second_order``."""
    with torch.enable_grad() if second_order else torch.no_grad(), _plain_batch_norm(network, second_order):
        try:
            return torch.func.vmap(lambda x, y: adapt(network, params, x, y), randomness="different")(
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
