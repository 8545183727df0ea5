"""The kernel engine: NTK backends, the MetaNTK algebra and condition numbers."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from metantk_plugin.kernels import (
    DegenerateKernelWarning,
    condition_number,
    empirical_ntk,
    metantk_from_kernels,
)


def small_convnet() -> nn.Module:
    """Covers plain, strided, dilated, depthwise and 1x1 convolutions, GroupNorm and Linear."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.GroupNorm(4, 8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=2, dilation=2, groups=8, bias=False),
        nn.Conv2d(8, 12, 1, stride=2),
        nn.ReLU(),
        nn.Conv2d(12, 12, (1, 5), padding=(0, 2), groups=4),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def naive_metantk(theta, k, n_tasks, n_query, n_support, t, reg):
    """The official formula, block by block, with scipy's pinvh and expm (independent of the package)."""
    theta, k = np.asarray(theta, float), np.asarray(k, float)
    nq = n_tasks * n_query
    q = [list(range(i * n_query, (i + 1) * n_query)) for i in range(n_tasks)]
    s = [list(range(nq + i * n_support, nq + (i + 1) * n_support)) for i in range(n_tasks)]
    a = []
    for i in range(n_tasks):
        kss = k[np.ix_(s[i], s[i])]
        decay = np.eye(n_support) if math.isinf(t) else np.eye(n_support) - scipy.linalg.expm(-t * kss)
        a.append(k[np.ix_(q[i], s[i])] @ scipy.linalg.pinvh(kss + reg * np.eye(n_support)) @ decay)
    phi = np.zeros((nq, nq))
    for i in range(n_tasks):
        for j in range(n_tasks):
            phi[np.ix_(q[i], q[j])] = (
                theta[np.ix_(q[i], q[j])]
                - a[i] @ theta[np.ix_(s[i], q[j])]
                - theta[np.ix_(q[i], s[j])] @ a[j].T
                + a[i] @ theta[np.ix_(s[i], s[j])] @ a[j].T
            )
    return phi, a


def random_psd(n, rank=None, seed=0):
    gen = np.random.default_rng(seed)
    m = gen.standard_normal((n, rank or n))
    return m @ m.T


def test_gram_backend_runs_under_bf16_autocast_and_accumulates_in_float32():
    """Under autocast a layer's input and output differ in dtype; the per-sample gradients
    are formed in bf16 and their Gram matrices summed in float32, close to the float32 NTK."""
    torch.manual_seed(2)
    net = small_convnet()
    head = nn.Linear(12, 5)
    x = torch.randn(10, 3, 12, 12)
    full = empirical_ntk(net, x, head=head).ntk
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reduced = empirical_ntk(net, x, head=head)
    assert reduced.ntk.dtype == torch.float32
    assert all(g.dtype == torch.float32 for g in reduced.layer_grams.values())
    difference = (reduced.ntk - full).abs().max() / full.abs().max()
    assert 0 < difference < 0.05  # bf16 rounding: present, and small


def test_gram_backend_marks_its_phases_for_the_profiler():
    from torch.profiler import ProfilerActivity, profile

    from metantk_plugin.kernels.ntk import PROFILE_PREFIX

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        empirical_ntk(small_convnet(), torch.randn(4, 3, 12, 12), head=nn.Linear(12, 5))
    phases = {e.name[len(PROFILE_PREFIX):] for e in prof.events() if e.name.startswith(PROFILE_PREFIX)}
    assert phases == {"forward", "backward", "Gram matrices", "per-sample gradients: conv 3x3",
                      "per-sample gradients: depthwise conv 3x3", "per-sample gradients: conv 1x1",
                      "per-sample gradients: grouped conv 1x5", "per-sample gradients: linear"}


@pytest.mark.parametrize("include_bias", [False, True])
def test_backends_agree_in_float64(include_bias):
    torch.manual_seed(0)
    net = small_convnet().double()
    head = nn.Linear(12, 5).double()
    x = torch.randn(12, 3, 12, 12, dtype=torch.float64)
    results = {b: empirical_ntk(net, x, head=head, include_bias=include_bias, backend=b)
               for b in ("gram", "vmap", "loop")}
    ref = results["loop"]
    for backend in ("gram", "vmap"):
        got = results[backend]
        scale = ref.ntk.abs().max()
        assert torch.allclose(got.ntk, ref.ntk, rtol=0, atol=1e-10 * scale), backend
        assert torch.allclose(got.head_kernel, ref.head_kernel, rtol=0, atol=1e-10 * scale), backend
        assert set(got.layer_grams) == set(ref.layer_grams)
    assert set(ref.layer_grams) == {"body.0", "body.3", "body.4", "body.6", "head"}


@pytest.mark.parametrize("conv, size", [
    (nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=6, bias=False), 8),   # split into 4 undilated phases
    (nn.Conv2d(6, 5, 3, padding=(2, 3), dilation=(2, 3), bias=False), 12),  # 6 phases, dense
    (nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=3, bias=False), 7),   # odd size: no split
    (nn.Conv2d(6, 6, 3, padding=1, dilation=2, groups=6, bias=False), 8),   # padding not a multiple: no split
    (nn.Conv2d(6, 8, 1, stride=2, bias=False), 7),                          # 1x1: a batched matrix product
    (nn.Conv2d(6, 8, 1, padding=1, bias=False), 5),                         # padded 1x1: the native call
])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_gram_backend_convolution_paths_match_the_loop(conv, size, memory_format):
    torch.manual_seed(7)
    net = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.Tanh(), conv, nn.Tanh(), nn.AdaptiveAvgPool2d(2),
                        nn.Flatten()).double()
    x = torch.randn(5, 2, size, size, dtype=torch.float64)
    loop = empirical_ntk(net, x, backend="loop").layer_grams["body.2"]
    gram = empirical_ntk(net.to(memory_format=memory_format), x, backend="gram").layer_grams["body.2"]
    assert torch.allclose(gram, loop, rtol=0, atol=1e-10 * loop.abs().max())


def test_float32_matches_float64_to_conv_rounding():
    torch.manual_seed(1)
    net = small_convnet()
    head = nn.Linear(12, 5)
    x = torch.randn(10, 3, 12, 12)
    ntk32 = empirical_ntk(net, x, head=head).ntk.double()
    ntk64 = empirical_ntk(net.double(), x.double(), head=head.double()).ntk
    assert torch.allclose(ntk32, ntk64, rtol=0, atol=1e-4 * ntk64.abs().max())


def test_head_kernel_is_ways_times_feature_gram():
    torch.manual_seed(2)
    net = small_convnet().double()
    head = nn.Linear(12, 5).double()
    x = torch.randn(8, 3, 12, 12, dtype=torch.float64)
    res = empirical_ntk(net, x, head=head)
    expected = 5 * res.features @ res.features.T
    assert torch.allclose(res.head_kernel, expected, atol=1e-12)
    with_bias = empirical_ntk(net, x, head=head, include_bias=True)
    assert torch.allclose(with_bias.head_kernel, expected + 5, atol=1e-12)


def test_model_linear_in_its_weights_has_the_feature_gram_as_ntk():
    """f(x) = W φ(x) with a fixed feature map φ: Θ = ways · Φ Φᵀ exactly."""
    torch.manual_seed(3)
    x = torch.randn(9, 2, 3, 3, dtype=torch.float64)
    body = nn.Sequential(nn.Flatten(), nn.Tanh())
    head = nn.Linear(18, 4, bias=False).double()
    for backend in ("gram", "vmap", "loop"):
        res = empirical_ntk(body, x, head=head, backend=backend)
        feats = torch.tanh(x.flatten(1))
        assert torch.allclose(res.ntk, 4 * feats @ feats.T, atol=1e-12), backend


def test_weight_shared_module_sums_its_uses():
    """A module called twice contributes the sum of both calls' gradients."""

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x):
            return self.conv(torch.relu(self.conv(x))).mean((2, 3))

    torch.manual_seed(4)
    net = Twice().double()
    x = torch.randn(6, 2, 5, 5, dtype=torch.float64)
    gram, loop = (empirical_ntk(net, x, backend=b).ntk for b in ("gram", "loop"))
    assert torch.allclose(gram, loop, rtol=0, atol=1e-10 * loop.abs().max())


def test_module_with_a_call_that_does_not_reach_the_output_keeps_its_other_call():
    """A module called twice whose second output is discarded: only the first call counts."""

    class Discarded(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x):
            kept = self.conv(x)
            self.conv(kept)  # computed, never used
            return kept.mean((2, 3))

    torch.manual_seed(5)
    net = Discarded().double()
    x = torch.randn(5, 2, 5, 5, dtype=torch.float64)
    gram, loop = (empirical_ntk(net, x, backend=b).ntk for b in ("gram", "loop"))
    assert torch.allclose(gram, loop, rtol=0, atol=1e-10 * loop.abs().max())


def test_in_place_activation_after_a_layer_leaves_its_output_gradient_intact():
    """ReLU(inplace=True) overwrites the conv output the hook saw; the gradient used must
    still be the one with respect to the conv output, not the activation's."""
    torch.manual_seed(6)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 4, 3),
                        nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()).double()
    x = torch.randn(6, 3, 7, 7, dtype=torch.float64)
    gram, loop = (empirical_ntk(net, x, backend=b).ntk for b in ("gram", "loop"))
    assert torch.allclose(gram, loop, rtol=0, atol=1e-10 * loop.abs().max())


def test_batchnorm_in_training_mode_is_refused_with_advice():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten())
    with pytest.raises(ValueError, match="BatchNorm2d in training mode.*GroupNorm"):
        empirical_ntk(net, torch.randn(4, 3, 5, 5))
    empirical_ntk(net.eval(), torch.randn(4, 3, 5, 5))


def test_unknown_backend_and_parameterless_network():
    with pytest.raises(ValueError, match="unknown NTK backend 'fast'"):
        empirical_ntk(nn.Flatten(), torch.randn(2, 3), backend="fast")
    with pytest.raises(ValueError, match="no Conv2d or Linear"):
        empirical_ntk(nn.Flatten(), torch.randn(2, 3))


def test_requires_grad_flags_are_restored():
    net = small_convnet()
    for p in net.parameters():
        p.requires_grad_(False)
    empirical_ntk(net, torch.randn(3, 3, 8, 8), head=nn.Linear(12, 2))
    assert not any(p.requires_grad for p in net.parameters())


@pytest.mark.parametrize("t", [math.inf, 1.0, 0.05])
@pytest.mark.parametrize("shape", [(3, 5, 5), (2, 15, 5), (4, 2, 10), (1, 3, 7)])
def test_metantk_matches_the_official_formula(shape, t):
    n_tasks, n_query, n_support = shape
    n = n_tasks * (n_query + n_support)
    theta = random_psd(n, seed=n)
    k = random_psd(n, rank=max(2, n // 2), seed=n + 1)  # an ANIL-like, rank-deficient K
    for kernel in (theta, k):
        phi = metantk_from_kernels(torch.tensor(theta), torch.tensor(kernel), n_tasks=n_tasks, n_query=n_query,
                                   n_support=n_support, inner_lr_time=t, reg=1e-3)
        ref, a = naive_metantk(theta, kernel, n_tasks, n_query, n_support, t, 1e-3)
        assert phi.dtype == torch.float64 and phi.shape == (n_tasks * n_query,) * 2
        np.testing.assert_allclose(phi.numpy(), ref, rtol=1e-8, atol=1e-8 * np.abs(ref).max())
        # Φ = M Θ Mᵀ with M = [I | -blockdiag(A_i)]: symmetric positive semi-definite
        m = np.hstack([np.eye(n_tasks * n_query), -scipy.linalg.block_diag(*a)])
        np.testing.assert_allclose(phi.numpy(), m @ theta @ m.T, rtol=1e-8, atol=1e-8 * np.abs(ref).max())
        assert torch.equal(phi, phi.T)
        assert torch.linalg.eigvalsh(phi).min() > -1e-8 * torch.linalg.eigvalsh(phi).max()


def test_large_inner_lr_time_approaches_the_limit():
    theta = torch.tensor(random_psd(30, seed=7))
    kwargs = dict(n_tasks=3, n_query=5, n_support=5, reg=1e-3)
    limit = metantk_from_kernels(theta, theta, inner_lr_time=math.inf, **kwargs)
    gaps = [float((metantk_from_kernels(theta, theta, inner_lr_time=t, **kwargs) - limit).abs().max())
            for t in (0.01, 0.1, 1.0, 100.0)]
    assert gaps == sorted(gaps, reverse=True)
    assert gaps[-1] < 1e-9 * float(limit.abs().max())


def test_maml_and_anil_differ_as_the_maths_says():
    """ANIL adapts only the head: its K is the head kernel; with a body that has no
    weights the two kernels coincide and so do the MetaNTKs."""
    torch.manual_seed(5)
    x = torch.randn(20, 3, 8, 8, dtype=torch.float64)
    head = nn.Linear(12, 5).double()
    res = empirical_ntk(small_convnet().double(), x, head=head)
    kw = dict(n_tasks=2, n_query=5, n_support=5)
    maml = metantk_from_kernels(res.ntk, res.ntk, **kw)
    anil = metantk_from_kernels(res.ntk, res.head_kernel, **kw)
    assert not torch.allclose(maml, anil, rtol=1e-3)
    ref, _ = naive_metantk(res.ntk.numpy(), (5 * res.features @ res.features.T).numpy(), 2, 5, 5, math.inf, 1e-3)
    np.testing.assert_allclose(anil.numpy(), ref, rtol=1e-8, atol=1e-10)
    frozen_body = empirical_ntk(nn.Sequential(nn.Flatten(), nn.Tanh()), x, head=nn.Linear(192, 5).double())
    a = metantk_from_kernels(frozen_body.ntk, frozen_body.ntk, **kw)
    b = metantk_from_kernels(frozen_body.ntk, frozen_body.head_kernel, **kw)
    assert torch.allclose(a, b, atol=1e-10)


def test_metantk_input_errors_are_clear():
    theta = torch.tensor(random_psd(30))
    with pytest.raises(ValueError, match=r"ntk has shape \(30, 30\), expected \(28, 28\)"):
        metantk_from_kernels(theta, theta, n_tasks=4, n_query=2, n_support=5)
    with pytest.raises(ValueError, match=r"k has shape \(29, 29\)"):
        metantk_from_kernels(theta, theta[:29, :29], n_tasks=3, n_query=5, n_support=5)
    bad = theta.clone()
    bad[3, 4] = float("nan")
    with pytest.raises(ValueError, match="ntk holds 1 NaN or infinite"):
        metantk_from_kernels(bad, theta, n_tasks=3, n_query=5, n_support=5)
    with pytest.raises(ValueError, match="n_tasks must be a positive int"):
        metantk_from_kernels(theta, theta, n_tasks=0, n_query=5, n_support=5)
    with pytest.raises(ValueError, match="inner_lr_time must be > 0"):
        metantk_from_kernels(theta, theta, n_tasks=3, n_query=5, n_support=5, inner_lr_time=-1)
    with pytest.raises(ValueError, match="reg must be"):
        metantk_from_kernels(theta, theta, n_tasks=3, n_query=5, n_support=5, reg=float("nan"))


def test_condition_number_regular_and_degenerate_cases():
    assert condition_number(torch.diag(torch.tensor([1.0, 2.0, 8.0]))) == pytest.approx(8.0)
    cases = {
        "zero": torch.zeros(3, 3),
        "nan": torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]]),
        "inf": torch.tensor([[float("inf"), 0.0], [0.0, 1.0]]),
        "negative": torch.diag(torch.tensor([-1.0, 2.0])),
        "singular": torch.ones(4, 4),
    }
    for label, matrix in cases.items():
        with pytest.warns(DegenerateKernelWarning, match=f"arch-{label}"):
            assert condition_number(matrix, label=f"arch-{label}") == math.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert condition_number(torch.eye(5)) == 1.0
    with pytest.raises(ValueError, match="square matrix"):
        condition_number(torch.ones(2, 3))
