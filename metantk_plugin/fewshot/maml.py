"""MAML, first-order MAML and ANIL as functional updates (``torch.func.functional_call``).

For a task with support set S and query set Q, the inner loop takes ``k`` steps

    θ_{i+1} = θ_i - α ∇_θ L_S(θ_i),        θ_0 = θ,

and the meta-loss is ``L_Q(θ_k)`` averaged over the tasks of a meta-batch. Its gradient:

* ``maml``:   ∇_θ L_Q(θ_k(θ)), differentiated through the inner steps (second order);
* ``fomaml``: ∇_{θ_k} L_Q(θ_k), the inner steps treated as constants (first order);
* ``anil``:   only the linear head is adapted in the inner loop, on the body's features;
  the meta-gradient reaches the body through the features (second order in the head).
  The head is the one the network declares (``head_name``), else a guess
  (:func:`~metantk_plugin.network_adapter.head_name`).

Three execution strategies give the same gradients: ``loop`` (a Python loop over tasks
with ``torch.autograd``), ``vmap`` (``torch.func.vmap`` over the tasks; fastest on GPUs)
and ``batched`` (the inner loops of all tasks at once, then the query sets task by task,
:mod:`~metantk_plugin.fewshot.task_batched`; fastest on CPU, where per-task convolutions
batched into grouped ones are slow; ANIL, whose inner loop adapts only the head, runs
as ``loop``). ``auto`` picks ``vmap`` on CUDA and ``batched`` elsewhere.

Query precision: with ``query_precision="bfloat16"``, meta-training runs the query sets'
forward and backward passes under bfloat16 autocast (convolutions and matrix products in
bf16, on AMX / AVX512-BF16 CPUs and on GPUs); the inner loop, the backward pass through it
and the meta-gradient stay float32, and so does every evaluation. The meta-gradient then
differs from the float32 one by bf16 rounding (on Omniglot's Conv-4, by up to 4 % of its
largest entry for MAML and 0.6 % first-order);
``benchmarks/maml_vs_learn2learn.py`` measures what that does to accuracy. Autocast does not
run under ``vmap``, so this takes the ``loop`` or ``batched`` strategy (``auto``: ``batched``);
and it is not offered for ANIL, whose body learns only through the query features.

Batch normalisation: the network's BatchNorm layers are switched to batch statistics
(:func:`use_batch_statistics`), as in MAML: support and query sets are normalised with
their own statistics, in training and at test time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from metantk_plugin._deprecation import renamed
from metantk_plugin.fewshot.settings import META_LEARNING_ALGORITHMS
from metantk_plugin.fewshot.task_batched import batched_accuracy, batched_meta_gradient
from metantk_plugin.network_adapter import head_name, split_output
from metantk_plugin.task_spec import check_optional_positive_int
from metantk_plugin.tasks import TaskBatch

__all__ = [
    "META_LEARNING_ALGORITHMS",
    "QUERY_PRECISIONS",
    "STRATEGIES",
    "MetaConfig",
    "MetaLearner",
    "adapted_accuracy",
    "meta_gradient",
    "use_batch_statistics",
]

__getattr__ = renamed(__name__, {"ALGORITHMS": f"{__name__}.META_LEARNING_ALGORITHMS"})
STRATEGIES = ("auto", "loop", "vmap", "batched")
QUERY_PRECISIONS = ("float32", "bfloat16")
Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class MetaConfig:
    """Settings of meta-training. ``test_inner_lr`` / ``test_inner_steps`` default to the
    training values; ``grad_clip`` is a maximum global L2 norm of the meta-gradient;
    ``query_precision`` the dtype of meta-training's query passes (module docstring)."""

    algorithm: str = "maml"
    inner_lr: float = 0.4
    inner_steps: int = 1
    test_inner_lr: float | None = None
    test_inner_steps: int | None = None
    meta_lr: float = 1e-3
    grad_clip: float | None = None
    strategy: str = "auto"
    query_precision: str = "float32"

    def __post_init__(self) -> None:
        if self.algorithm not in META_LEARNING_ALGORITHMS:
            raise ValueError(f"unknown algorithm {self.algorithm!r}; expected one of {list(META_LEARNING_ALGORITHMS)}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; expected one of {list(STRATEGIES)}")
        if self.query_precision not in QUERY_PRECISIONS:
            raise ValueError(f"unknown query_precision {self.query_precision!r}; expected one of "
                             f"{list(QUERY_PRECISIONS)}")
        if self.query_precision != "float32" and self.strategy == "vmap":
            raise ValueError(f"query_precision={self.query_precision!r} needs strategy 'loop' or 'batched' "
                             "(autocast does not run under torch.func.vmap); 'auto' picks 'batched'")
        if self.query_precision != "float32" and self.algorithm == "anil":
            raise ValueError("query_precision='bfloat16' is for maml and fomaml: ANIL's body learns only through "
                             "the query features, and bf16 rounding moves its meta-gradient by about 18 % (3-5 % "
                             "for maml and fomaml)")
        for name in ("inner_lr", "meta_lr", "test_inner_lr", "grad_clip"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        for name in ("inner_steps", "test_inner_steps"):
            check_optional_positive_int(name, getattr(self, name))

    @property
    def eval_lr(self) -> float:
        return self.inner_lr if self.test_inner_lr is None else self.test_inner_lr

    @property
    def eval_steps(self) -> int:
        return self.inner_steps if self.test_inner_steps is None else self.test_inner_steps

    def to_dict(self) -> dict:
        return asdict(self)


def use_batch_statistics(network: nn.Module) -> nn.Module:
    """Make every BatchNorm layer of ``network`` (in place) normalise with the statistics of
    the current batch, in train and eval mode alike, and drop its running statistics."""
    torch.func.replace_all_batch_norm_modules_(network)
    return network


def _resolve_strategy(strategy: str, device: torch.device, query_precision: str = "float32") -> str:
    if strategy == "auto":
        return "vmap" if device.type == "cuda" and query_precision == "float32" else "batched"
    return strategy


class _Functional:
    """Pure functions of a parameter dict for one network: logits, features, head; the
    query passes in ``query_precision``."""

    def __init__(self, network: nn.Module, algorithm: str, query_precision: str = "float32"):
        self.network = network
        self.algorithm = algorithm
        self.head: tuple[str, str | None] | None = _head_parameters(network) if algorithm == "anil" else None
        self.query_dtype = getattr(torch, query_precision)

    def logits(self, params: Params, x: torch.Tensor, network: nn.Module | None = None) -> torch.Tensor:
        """The logits of ``self.network``, or of ``network`` (a copy of it)."""
        return split_output(functional_call(self.network if network is None else network, params, (x,)))[1]

    def query_logits(self, params: Params, x: torch.Tensor, network: nn.Module | None = None) -> torch.Tensor:
        """``logits`` of query images, computed in the query dtype and returned in float32."""
        if self.query_dtype == torch.float32:
            return self.logits(params, x, network)
        with torch.autocast(x.device.type, dtype=self.query_dtype):
            return self.logits(params, x, network).float()

    def features(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        return split_output(functional_call(self.network, params, (x,)))[0]

    def head_params(self, params: Params) -> Params:
        weight, bias = self.head
        return {name: params[name] for name in (weight, bias) if name is not None}

    def head_logits(self, head: Params, features: torch.Tensor) -> torch.Tensor:
        weight, bias = self.head
        return F.linear(features, head[weight], head[bias] if bias is not None else None)

    def check_head(self, params: Params, x: torch.Tensor) -> None:
        """ANIL's premise: the logits are the head applied to the returned features."""
        with torch.no_grad():
            features, logits = split_output(functional_call(self.network, params, (x,)))
            if features is logits:
                raise ValueError("ANIL needs a network whose forward returns (features, logits); this one returns "
                                 "only logits")
            head_logits = self.head_logits(self.head_params(params), features)
            if not torch.allclose(head_logits, logits, rtol=1e-4, atol=1e-5):
                raise ValueError(
                    f"ANIL adapts the linear head {self.head[0].rsplit('.', 1)[0]!r} on the network's features, "
                    "but the network's logits are not that head applied to the features it returns; "
                    "forward must return (features, head(features))"
                )


def _head_parameters(network: nn.Module) -> tuple[str, str | None]:
    """The names of the linear head's weight and bias (None without a bias)."""
    name = head_name(network)
    head = network.get_submodule(name)
    return f"{name}.weight", (f"{name}.bias" if head.bias is not None else None)


def _cross_entropy_and_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return F.cross_entropy(logits, labels), (logits.argmax(dim=-1) == labels).float().mean()


GradFn = Callable[[Callable[[Params], torch.Tensor], Params], Params]


def _autograd(create_graph: bool) -> GradFn:
    def grads(loss_fn: Callable[[Params], torch.Tensor], params: Params) -> Params:
        # parameters the loss does not reach (an edge a cell never uses) get zero gradients
        values = torch.autograd.grad(loss_fn(params), list(params.values()), create_graph=create_graph,
                                     allow_unused=True, materialize_grads=True)
        return dict(zip(params, values))

    return grads


def _func_grad(loss_fn: Callable[[Params], torch.Tensor], params: Params) -> Params:
    return torch.func.grad(loss_fn)(params)


def _adapt(loss_fn: Callable[[Params], torch.Tensor], params: Params, lr: float, steps: int,
           grad_fn: GradFn) -> Params:
    """``steps`` gradient steps ``θ <- θ - lr ∇ loss_fn(θ)``."""
    for _ in range(steps):
        grads = grad_fn(loss_fn, params)
        params = {name: value - lr * grads[name] for name, value in params.items()}
    return params


def _support_loss(fn: _Functional, sx: torch.Tensor, sy: torch.Tensor,
                  network: nn.Module | None = None) -> Callable[[Params], torch.Tensor]:
    return lambda params: F.cross_entropy(fn.logits(params, sx, network), sy)


def _task_query(fn: _Functional, params: Params, sx: torch.Tensor, sy: torch.Tensor, qx: torch.Tensor,
                lr: float, steps: int, grad_fn: GradFn) -> torch.Tensor:
    """Query logits after adapting on the support set (whole network, or ANIL's head)."""
    if fn.algorithm == "anil":
        support_features, query_features = fn.features(params, sx), fn.features(params, qx)
        head = _adapt(lambda h: F.cross_entropy(fn.head_logits(h, support_features), sy), fn.head_params(params),
                      lr, steps, grad_fn)
        return fn.head_logits(head, query_features)
    return fn.query_logits(_adapt(_support_loss(fn, sx, sy), params, lr, steps, grad_fn), qx)


def meta_gradient(network: nn.Module, tasks: TaskBatch, config: MetaConfig) -> tuple[Params, float, float]:
    """The meta-gradient of the mean query loss over ``tasks`` for ``config.algorithm``,
    with the mean query loss and accuracy after adaptation. The network's BatchNorm layers
    should use batch statistics (:func:`use_batch_statistics`)."""
    fn = _Functional(network, config.algorithm, config.query_precision)
    params = {name: p for name, p in network.named_parameters()}
    if fn.head is not None:
        fn.check_head(params, tasks.support_x[0])
    strategy = _resolve_strategy(config.strategy, tasks.support_x.device, config.query_precision)
    if strategy == "vmap":
        return _meta_gradient_vmap(fn, params, tasks, config)
    if strategy == "batched" and fn.head is None:
        return batched_meta_gradient(
            fn.network, params, tasks, first_order=config.algorithm == "fomaml",
            adapt=_adapt_with_func_grad(fn, config.inner_lr, config.inner_steps),
            query_loss=lambda net, weights, qx, qy: _cross_entropy_and_accuracy(fn.query_logits(weights, qx, net), qy))
    return _meta_gradient_loop(fn, params, tasks, config)


def _adapt_with_func_grad(fn: _Functional, lr: float, steps: int):
    """``adapt(network, params, support_x, support_y)``: the whole inner loop of ``network`` (a
    copy of ``fn.network``), with ``torch.func.grad``."""
    return lambda network, params, sx, sy: _adapt(_support_loss(fn, sx, sy, network), params, lr, steps, _func_grad)


def _meta_gradient_loop(fn: _Functional, params: Params, tasks: TaskBatch,
                        config: MetaConfig) -> tuple[Params, float, float]:
    leaves = {name: p.detach().requires_grad_() for name, p in params.items()}
    total = {name: torch.zeros_like(p) for name, p in leaves.items()}
    n_tasks, loss_sum, accuracy_sum = tasks.n_tasks, 0.0, 0.0
    first_order = config.algorithm == "fomaml"
    for t in range(n_tasks):
        sx, sy, qx, qy = tasks.support_x[t], tasks.support_y[t], tasks.query_x[t], tasks.query_y[t]
        if first_order:
            fast = _adapt(_support_loss(fn, sx, sy), leaves, config.inner_lr, config.inner_steps,
                          _autograd(create_graph=False))
            targets = {name: value.detach().requires_grad_() for name, value in fast.items()}
            logits = fn.query_logits(targets, qx)
        else:
            targets = leaves
            logits = _task_query(fn, leaves, sx, sy, qx, config.inner_lr, config.inner_steps,
                                 _autograd(create_graph=True))
        loss, accuracy = _cross_entropy_and_accuracy(logits, qy)
        grads = torch.autograd.grad(loss / n_tasks, list(targets.values()), allow_unused=True)
        for name, grad in zip(targets, grads):
            if grad is not None:
                total[name] += grad
        loss_sum += float(loss.detach())
        accuracy_sum += float(accuracy)
    return total, loss_sum / n_tasks, accuracy_sum / n_tasks


def _meta_gradient_vmap(fn: _Functional, params: Params, tasks: TaskBatch,
                        config: MetaConfig) -> tuple[Params, float, float]:
    """Per-task gradients under ``vmap(grad(task))``, then their mean. (``grad(vmap(...))``
    is avoided: with BatchNorm it gives wrong second-order gradients in torch 2.x.)"""
    params = {name: p.detach() for name, p in params.items()}
    lr, steps = config.inner_lr, config.inner_steps

    def task_grad(p: Params, sx, sy, qx, qy):
        if config.algorithm == "fomaml":
            fast = _adapt(_support_loss(fn, sx, sy), p, lr, steps, _func_grad)
            return torch.func.grad(lambda q: _with_aux(_cross_entropy_and_accuracy(fn.query_logits(q, qx), qy)),
                                   has_aux=True)(fast)
        return torch.func.grad(lambda q: _with_aux(_cross_entropy_and_accuracy(
            _task_query(fn, q, sx, sy, qx, lr, steps, _func_grad), qy)), has_aux=True)(p)

    grads, (losses, accuracies) = torch.func.vmap(task_grad, in_dims=(None, 0, 0, 0, 0), randomness="different")(
        params, tasks.support_x, tasks.support_y, tasks.query_x, tasks.query_y)
    return {name: g.mean(0) for name, g in grads.items()}, float(losses.mean()), float(accuracies.mean())


def _with_aux(loss_and_accuracy: tuple[torch.Tensor, torch.Tensor]):
    loss, accuracy = loss_and_accuracy
    return loss, (loss.detach(), accuracy.detach())


def adapted_accuracy(network: nn.Module, tasks: TaskBatch, *, algorithm: str, lr: float, steps: int,
                     strategy: str = "auto") -> torch.Tensor:
    """Query accuracy ``[T]`` of each task after ``steps`` inner steps of size ``lr`` on its
    support set (no meta-gradient is formed)."""
    fn = _Functional(network, algorithm)
    params = {name: p.detach() for name, p in network.named_parameters()}
    if fn.head is not None:
        fn.check_head(params, tasks.support_x[0])
    strategy = _resolve_strategy(strategy, tasks.support_x.device)
    if strategy == "batched" and fn.head is None:
        return batched_accuracy(network, params, tasks, adapt=_adapt_with_func_grad(fn, lr, steps),
                                logits=lambda net, weights, x: fn.logits(weights, x, net))
    if strategy == "vmap":
        def task_accuracy(sx, sy, qx, qy):
            logits = _task_query(fn, params, sx, sy, qx, lr, steps, _func_grad)
            return (logits.argmax(-1) == qy).float().mean()

        return torch.func.vmap(task_accuracy, randomness="different")(
            tasks.support_x, tasks.support_y, tasks.query_x, tasks.query_y).detach()
    accuracies = []
    for t in range(tasks.n_tasks):
        leaves = {name: p.clone().requires_grad_() for name, p in params.items()}
        with torch.enable_grad():
            logits = _task_query(fn, leaves, tasks.support_x[t], tasks.support_y[t], tasks.query_x[t], lr, steps,
                                 _autograd(create_graph=False))
        accuracies.append((logits.detach().argmax(-1) == tasks.query_y[t]).float().mean())
    return torch.stack(accuracies)


class MetaLearner:
    """A network and its meta-optimiser (Adam): ``meta_step(tasks)`` takes one meta-update,
    ``evaluate(tasks)`` adapts to each task with the test settings and returns query
    accuracies. The network's BatchNorm layers are switched to batch statistics."""

    def __init__(self, network: nn.Module, config: MetaConfig = MetaConfig(), *,
                 device: torch.device | str | None = None):
        self.config = config
        self.device = torch.device(device) if device is not None else next(network.parameters()).device
        self.network = use_batch_statistics(network).to(self.device)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=config.meta_lr)

    def meta_step(self, tasks: TaskBatch) -> tuple[float, float]:
        """One meta-update on ``tasks``; returns the mean query (loss, accuracy) after adaptation."""
        self.network.train()
        grads, loss, accuracy = meta_gradient(self.network, tasks.to(self.device), self.config)
        for name, param in self.network.named_parameters():
            param.grad = grads[name].to(param.dtype)
        if self.config.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.network.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss, accuracy

    def evaluate(self, tasks: TaskBatch) -> torch.Tensor:
        """Query accuracy ``[T]`` after test-time adaptation (dropout off, BatchNorm on batch statistics)."""
        self.network.eval()
        try:
            return adapted_accuracy(self.network, tasks.to(self.device), algorithm=self.config.algorithm,
                                    lr=self.config.eval_lr, steps=self.config.eval_steps,
                                    strategy=self.config.strategy).cpu()
        finally:
            self.network.train()

    def state_dict(self) -> dict:
        return {"network": self.network.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
