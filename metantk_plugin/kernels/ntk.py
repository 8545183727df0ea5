"""Empirical NTK of a scalar network output, by three interchangeable backends.

For a network with output ``out(x)`` (``[N, k]`` logits) let ``g(x) = sum_k out(x)_k``.
The empirical NTK over the selected parameters ``W_l`` is

    Θ(x_n, x_m) = Σ_l ⟨∂g(x_n)/∂W_l, ∂g(x_m)/∂W_l⟩,        Θ: [N, N]

The selected parameters are the weights (and, on request, biases) of every ``Conv2d``
and ``Linear`` module that takes part in the forward pass; normalisation layers are
never included. Each backend also returns the per-module Gram matrices, so the head
kernel used by ANIL (the head's own share of Θ) comes from the same pass.

Backends:

* ``"gram"`` (default, fastest): one batched forward and one backward; inside the
  backward, each layer's per-sample weight gradients are formed from its captured input
  and its output gradient (one native backward-weight call per convolution, a batched
  product for 1x1 ones, dilated ones split into undilated polyphase parts) and reduced
  to the layer's Gram matrix at once, so the full ``N x |θ|`` Jacobian never exists.
* ``"vmap"``: ``torch.func.vmap`` of per-sample ``grad``; holds ``N x |θ|``.
* ``"loop"``: one forward and backward per sample; the plain reference for tests.

The network returns logits or a ``(features, logits)`` pair
(:func:`metantk_plugin.network_adapter.split_output`). Samples must be independent:
BatchNorm in training mode couples them, so a network holding one is refused (use
GroupNorm, ``eval()``, or no normalisation: :func:`~metantk_plugin.network_adapter.replace_batchnorm`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.profiler import record_function

from metantk_plugin.network_adapter import split_output

__all__ = ["BACKENDS", "PROFILE_PREFIX", "NTKResult", "empirical_ntk", "kernel_modules", "layer_kind"]

BACKENDS = ("gram", "vmap", "loop")
#: ``torch.profiler`` ranges of the ``gram`` backend start with this (``benchmarks/speed.py`` sums them).
PROFILE_PREFIX = "metantk: "
_KERNEL_TYPES = (nn.Conv2d, nn.Linear)


@dataclass
class NTKResult:
    """``ntk`` [N, N]; ``head_kernel`` [N, N] (the head's share, or None without a head);
    ``features`` [N, D] of the body; ``layer_grams`` name -> [N, N]."""

    ntk: torch.Tensor
    head_kernel: torch.Tensor | None
    features: torch.Tensor
    layer_grams: dict[str, torch.Tensor]


class _WithHead(nn.Module):
    """The body followed by a linear head on its features: ``head(features(x))``."""

    def __init__(self, body: nn.Module, head: nn.Linear | None):
        super().__init__()
        self.body = body
        self.head = head
        self.last_features: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, logits = split_output(self.body(x))
        self.last_features = features
        if self.head is None:
            return logits
        return self.head(features.flatten(1))


def kernel_modules(network: nn.Module) -> dict[str, nn.Module]:
    """The modules whose weights enter the NTK: every Conv2d and Linear, by qualified name."""
    return {name: m for name, m in network.named_modules() if isinstance(m, _KERNEL_TYPES)}


def _check_independent(network: nn.Module) -> None:
    for name, m in network.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
            raise ValueError(
                f"module {name!r} is a {type(m).__name__} in training mode: it mixes samples, so "
                "per-sample gradients (and the NTK) are undefined. Build the network with GroupNorm "
                "or no normalisation for kernels, or call network.eval() first."
            )


def _selected_params(modules: dict[str, nn.Module], include_bias: bool) -> dict[str, list[tuple[str, nn.Parameter]]]:
    chosen: dict[str, list[tuple[str, nn.Parameter]]] = {}
    for name, m in modules.items():
        params = [("weight", m.weight)]
        if include_bias and m.bias is not None:
            params.append(("bias", m.bias))
        chosen[name] = params
    return chosen


def empirical_ntk(
    network: nn.Module,
    x: torch.Tensor,
    *,
    head: nn.Linear | None = None,
    include_bias: bool = False,
    backend: str = "gram",
) -> NTKResult:
    """Empirical NTK of ``g(x) = sum(head(features(x)))`` (or of the network's own logits
    when ``head`` is None) over the Conv2d/Linear weights of network and head.

    ``x``: [N, *input_shape]. Returns an :class:`NTKResult` in the dtype of ``x``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown NTK backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise ValueError(f"x must be a batch tensor [N, *input_shape], got {getattr(x, 'shape', x)!r}")
    _check_independent(network)
    model = _WithHead(network, head)
    modules = kernel_modules(model)
    if not modules:
        raise ValueError("the network has no Conv2d or Linear module, so its NTK is empty")
    params = _selected_params(modules, include_bias)
    flags = {id(p): p.requires_grad for plist in params.values() for _, p in plist}
    for plist in params.values():
        for _, p in plist:
            p.requires_grad_(True)
    try:
        with torch.enable_grad():
            if backend == "gram":
                grams, features = _gram_backend(model, modules, params, x)
            elif backend == "vmap":
                grams, features = _vmap_backend(model, params, x)
            else:
                grams, features = _loop_backend(model, params, x)
    finally:
        for plist in params.values():
            for _, p in plist:
                p.requires_grad_(flags[id(p)])
    n = x.shape[0]
    ntk = torch.zeros(n, n, dtype=x.dtype, device=x.device)
    for gram in grams.values():
        ntk = ntk + gram
    head_kernel = grams.get("head", torch.zeros_like(ntk)) if head is not None else None
    return NTKResult(ntk, head_kernel, features.detach(), grams)


# ---------------------------------------------------------------- reference loop
def _loop_backend(model: _WithHead, params, x):
    names = [(m, pname, p) for m, plist in params.items() for pname, p in plist]
    rows: list[list[torch.Tensor]] = []
    features = []
    for i in range(x.shape[0]):
        g = model(x[i : i + 1]).sum()
        features.append(model.last_features.detach())
        grads = torch.autograd.grad(g, [p for _, _, p in names], allow_unused=True)
        rows.append([torch.zeros_like(p).flatten() if gr is None else gr.flatten()
                     for (_, _, p), gr in zip(names, grads)])
    grams: dict[str, torch.Tensor] = {}
    for j, (mname, _, _) in enumerate(names):
        jac = torch.stack([r[j] for r in rows])
        grams[mname] = grams.get(mname, 0) + jac @ jac.T
    return grams, torch.cat(features)


# ---------------------------------------------------------------- torch.func vmap
def _vmap_backend(model: _WithHead, params, x):
    from torch.func import functional_call, grad, vmap

    all_params = dict(model.named_parameters())
    keys = [f"{m}.{pname}" for m, plist in params.items() for pname, _ in plist]
    buffers = dict(model.named_buffers())
    frozen = {k: v.detach() for k, v in all_params.items() if k not in keys}

    def g_single(selected: dict, xi: torch.Tensor) -> torch.Tensor:
        return functional_call(model, ({**frozen, **selected}, buffers), (xi.unsqueeze(0),)).sum()

    selected = {k: all_params[k].detach() for k in keys}
    per_sample = vmap(grad(g_single), in_dims=(None, 0))(selected, x)
    grams: dict[str, torch.Tensor] = {}
    for key in keys:
        mname = key.rsplit(".", 1)[0]
        jac = per_sample[key].flatten(1)
        grams[mname] = grams.get(mname, 0) + jac @ jac.T
    with torch.no_grad():
        model(x)
    return grams, model.last_features


# ---------------------------------------------------------------- per-layer Gram
def _gram_backend(model: _WithHead, modules, params, x):
    """One forward pass; one backward pass to the input, in which a hook on every layer
    output turns the output gradient, as soon as it exists, into per-sample weight gradients
    and these into the layer's Gram matrix. So one layer's per-sample gradients live at a
    time, and no output gradient outlives its use. A module applied k times gets its Gram
    after the k-th gradient (per-sample gradients summed over the calls first)."""
    x = x.detach().requires_grad_(True)
    calls_left: Counter[str] = Counter()
    summed: dict[str, dict[str, torch.Tensor]] = {}
    grams: dict[str, torch.Tensor] = {}

    def take_output_grad(name: str, inp: torch.Tensor, gout: torch.Tensor) -> None:
        module = modules[name]
        with record_function(f"{PROFILE_PREFIX}per-sample gradients: {layer_kind(module)}"):
            sample_grads = _per_sample_grads(module, inp, gout, params[name])
        acc = summed.setdefault(name, {})
        for pname, gs in sample_grads.items():
            acc[pname] = acc[pname] + gs if pname in acc else gs
        calls_left[name] -= 1
        if calls_left[name] == 0:
            with record_function(f"{PROFILE_PREFIX}Gram matrices"):
                grams[name] = sum(_gram(gs) for gs in summed.pop(name).values())

    def make_hook(name: str) -> Callable:
        def hook(module, inputs, output):
            if output.requires_grad:
                calls_left[name] += 1
                inp = inputs[0].detach()
                output.register_hook(lambda gout: take_output_grad(name, inp, gout))

        return hook

    handles = [m.register_forward_hook(make_hook(name)) for name, m in modules.items()]
    try:
        with record_function(f"{PROFILE_PREFIX}forward"):
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    with record_function(f"{PROFILE_PREFIX}backward"):
        torch.autograd.grad(out.sum(), x, allow_unused=True)
    with record_function(f"{PROFILE_PREFIX}Gram matrices"):
        for name, acc in summed.items():  # modules with a call whose output did not reach the sum
            grams[name] = sum(_gram(gs) for gs in acc.values())
    return grams, model.last_features


def layer_kind(module: nn.Module) -> str:
    """A short name for the kind of a kernel layer: ``linear``, ``conv 1x1``, ``conv 3x3``,
    ``depthwise conv 3x3``, ``grouped conv 3x3`` (used to label where the time goes)."""
    if isinstance(module, nn.Linear):
        return "linear"
    size = "x".join(str(k) for k in module.kernel_size)
    if module.groups == 1:
        return f"conv {size}"
    if module.groups == module.in_channels:
        return f"depthwise conv {size}"
    return f"grouped conv {size}"


def _gram(per_sample: torch.Tensor) -> torch.Tensor:
    """``J J^T`` of per-sample gradients ``J`` [N, P], accumulated in at least float32."""
    flat = per_sample.flatten(1)
    if flat.dtype in (torch.float16, torch.bfloat16):
        flat = flat.float()
    with torch.autocast(flat.device.type, enabled=False):  # autocast would round the product back down
        return flat @ flat.T


def _per_sample_grads(module: nn.Module, inp: torch.Tensor, gout: torch.Tensor, plist) -> dict[str, torch.Tensor]:
    wanted = {pname for pname, _ in plist}
    n = inp.shape[0]
    if inp.dtype != gout.dtype:  # under autocast a layer's input and output differ in dtype
        inp = inp.to(gout.dtype)
    if isinstance(module, nn.Linear):
        a = inp.reshape(n, -1, inp.shape[-1])
        b = gout.reshape(n, -1, gout.shape[-1])
        grads = {"weight": torch.einsum("nso,nsi->noi", b, a)}
        if "bias" in wanted:
            grads["bias"] = b.sum(1)
        return {k: v for k, v in grads.items() if k in wanted}
    return _conv2d_per_sample_grads(module, inp, gout, wanted)


def _conv2d_per_sample_grads(
    conv: nn.Conv2d, inp: torch.Tensor, gout: torch.Tensor, wanted
) -> dict[str, torch.Tensor]:
    if conv.padding_mode != "zeros":
        raise ValueError(
            f"Conv2d padding_mode {conv.padding_mode!r} is not supported by the 'gram' backend; use 'vmap'"
        )
    n = inp.shape[0]
    grads: dict[str, torch.Tensor] = {}
    if "weight" in wanted:
        padding = conv.padding
        if isinstance(padding, str):
            padding = _explicit_padding(conv, padding)
        grads["weight"] = _conv2d_weight_grads(conv, inp, gout, padding)
    if "bias" in wanted:
        grads["bias"] = gout.sum((2, 3)).reshape(n, -1)
    return grads


def _conv2d_weight_grads(conv: nn.Conv2d, inp: torch.Tensor, gout: torch.Tensor, padding) -> torch.Tensor:
    """Per-sample weight gradients ``[N, O * I/G * kh * kw]`` of a convolution.

    dW_n[o, i, a, c] = Σ_{y,x} B_n[o, y, x] · X̃_n[i, y·s + a·d, x·s + c·d] (X̃ zero-padded).
    A 1x1 convolution (no padding, one group) is a batched matrix product,
    dW_n = B_n [O, S] · X_n[:, ::s, ::s]ᵀ [S, I], taken on [S, C] views of channels-last
    maps (so they are not transposed into NCHW first). Any other is the weight gradient of one
    convolution whose batch is folded into its groups: input ``[1, N·I, H, W]``, output
    gradient ``[1, N·O, H', W']``, ``N·G`` groups; one native backward-weight call gives all
    samples at once, with no im2col matrix. A dilated stride-1 convolution is first split
    into its undilated polyphase parts (:func:`_polyphase`): oneDNN's dilated grouped
    backward-weight is 10-40x slower than the undilated one on 32x32 maps.
    """
    n = inp.shape[0]
    if conv.kernel_size == (1, 1) and conv.groups == 1 and tuple(padding) == (0, 0):
        x = inp[:, :, :: conv.stride[0], :: conv.stride[1]]
        if gout.is_contiguous(memory_format=torch.channels_last):
            x = x.permute(0, 2, 3, 1).reshape(n, -1, conv.in_channels)
            b = gout.permute(0, 2, 3, 1).reshape(n, -1, conv.out_channels)
            return torch.bmm(b.transpose(1, 2), x).reshape(n, -1)
        x = x.reshape(n, conv.in_channels, -1)
        b = gout.reshape(n, conv.out_channels, -1)
        return torch.bmm(b, x.transpose(1, 2)).reshape(n, -1)
    dilation, phases = list(conv.dilation), 1
    if _polyphase_applies(conv, inp, gout, padding):
        inp, gout = _polyphase(inp, conv.dilation), _polyphase(gout, conv.dilation)
        padding = [p // d for p, d in zip(padding, conv.dilation)]
        phases, dilation = conv.dilation[0] * conv.dilation[1], [1, 1]
    weight_shape = (n * conv.out_channels, conv.in_channels // conv.groups, *conv.kernel_size)
    grad = torch.ops.aten.convolution_backward(
        gout.reshape(phases, n * conv.out_channels, *gout.shape[-2:]),
        inp.reshape(phases, n * conv.in_channels, *inp.shape[-2:]),
        inp.new_empty(weight_shape),
        None, list(conv.stride), list(padding), dilation, False, [0, 0], n * conv.groups,
        [False, True, False],
    )[1]
    return grad.reshape(n, -1)


def _polyphase_applies(conv: nn.Conv2d, inp: torch.Tensor, gout: torch.Tensor, padding) -> bool:
    """Whether a dilated convolution splits exactly into undilated ones on polyphase sub-grids:
    stride 1, and the dilation divides the padding and both maps' sizes."""
    if conv.dilation == (1, 1) or conv.stride != (1, 1):
        return False
    sizes = (*inp.shape[-2:], *gout.shape[-2:], *padding)
    return all(v % d == 0 for v, d in zip(sizes, conv.dilation * 3))


def _polyphase(t: torch.Tensor, dilation: tuple[int, int]) -> torch.Tensor:
    """``[N, C, H, W]`` -> ``[dh·dw, N, C, H/dh, W/dw]``, phase (r, q) holding ``t[..., r::dh, q::dw]``.

    With stride 1 and padding p = d·p', a convolution dilated by d maps phase (r, q) of its
    input to phase (r, q) of its output as an undilated convolution with padding p', so its
    weight gradient is the undilated one summed over the phases (the batch of the call).
    """
    n, c, h, w = t.shape
    dh, dw = dilation
    return t.reshape(n, c, h // dh, dh, w // dw, dw).permute(3, 5, 0, 1, 2, 4).reshape(dh * dw, n, c, h // dh, w // dw)


def _explicit_padding(conv: nn.Conv2d, mode: str) -> tuple[int, int]:
    if mode == "valid":
        return (0, 0)
    pads = []
    for k, d in zip(conv.kernel_size, conv.dilation):
        total = d * (k - 1)
        if total % 2:
            raise ValueError(f"asymmetric 'same' padding of {conv} is not supported by the 'gram' backend; use 'vmap'")
        pads.append(total // 2)
    return tuple(pads)
