"""The zero-cost proxy suite: every proxy on tiny networks, closed forms where they exist,
sign conventions, determinism, and that the caller's network is never changed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from metantk_plugin.proxies import PopulationProxy, available_proxies, compute_proxy, get_proxy, resolve_proxy
from metantk_plugin.proxies.population import population_proxy, te_nas_scores
from metantk_plugin.proxies.registry import check_proxy_options
from metantk_plugin.spaces.nasbench201 import build_network
from metantk_plugin.tasks import TaskBatch, synthetic_tasks

LOWER_IS_BETTER = {"metantk", "metantk_anil", "ntk_cond"}
SUITE = {"grad_norm", "snip", "grasp", "fisher", "synflow", "jacov", "nwot", "epe_nas", "zen", "l2_norm", "plain",
         "params", "flops", "metantk", "metantk_anil", "ntk_cond", "linear_regions"}
KERNEL = {"metantk", "metantk_anil", "ntk_cond", "linear_regions"}
ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(scope="module")
def tasks() -> TaskBatch:
    return synthetic_tasks(n_tasks=2, ways=3, shots=2, queries=2, image_size=8, channels=3, seed=5)


def tiny_nb201(norm: str) -> nn.Module:
    return build_network(ARCH, C=4, N=1, num_classes=3, norm=norm, seed=11).train()


class Mlp(nn.Module):
    """Flatten -> Linear -> ReLU -> Linear, returning (features, logits)."""

    def __init__(self, d_in: int, hidden: int = 6, classes: int = 3, bias: bool = True):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden, bias=bias)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden, classes, bias=bias)

    def forward(self, x):
        h = self.relu(self.fc1(x.flatten(1)))
        return h, self.fc2(h)


def test_registry_holds_the_whole_suite_with_the_documented_signs():
    assert SUITE <= set(available_proxies())
    for name in SUITE:
        proxy = get_proxy(name)
        assert proxy.higher_is_better == (name not in LOWER_IS_BETTER), name
        assert proxy.summary, name
        assert proxy.oriented(2.0) > proxy.oriented(3.0) if name in LOWER_IS_BETTER else proxy.oriented(3.0) > 2.0
    for name in ("synflow", "params", "flops", "l2_norm", "zen"):
        assert not get_proxy(name).uses_data
    assert population_proxy("te_nas").higher_is_better and "te_nas" not in available_proxies()
    with pytest.raises(ValueError, match="unknown population proxy 'nope'"):
        population_proxy("nope")


def test_one_lookup_answers_for_network_and_population_proxies():
    te_nas, synflow = resolve_proxy("te_nas"), resolve_proxy("synflow")
    assert isinstance(te_nas, PopulationProxy) and te_nas is population_proxy("te_nas")
    assert (te_nas.kind, te_nas.higher_is_better) == ("population", True)
    assert te_nas.columns == te_nas.inputs == ("ntk_cond", "linear_regions")
    assert synflow is get_proxy("synflow") and (synflow.kind, synflow.columns) == ("network", ("synflow",))
    assert available_proxies("population") == ["az_nas", "te_nas"]
    assert available_proxies("all") == [*available_proxies(), "az_nas", "te_nas"]  # network proxies first, as before
    with pytest.raises(ValueError, match="unknown proxy 'nope'; available: .*synflow, te_nas, zen"):
        resolve_proxy("nope")
    with pytest.raises(ValueError, match="unknown proxy 'te_nas'; available: .*synflow, zen, zico$"):
        get_proxy("te_nas")  # compute_proxy scores single networks only
    with pytest.raises(ValueError, match="unknown population proxy 'synflow'; available: az_nas, te_nas$"):
        population_proxy("synflow")
    with pytest.raises(ValueError, match="kind must be one of network, population or all"):
        available_proxies("per-network")
    check_proxy_options("te_nas", {})
    with pytest.raises(ValueError, match="proxy 'te_nas' has no option 'k'; its options: none"):
        check_proxy_options("te_nas", {"k": 1})
    with pytest.raises(ValueError, match="proxy 'synflow' has no option 'k'; its options: none"):
        check_proxy_options("synflow", {"k": 1})


def test_population_proxies_mapping_still_imports_with_a_deprecation_warning():
    from metantk_plugin.proxies import population

    with pytest.warns(DeprecationWarning, match="POPULATION_PROXIES is deprecated; use .*resolve_proxy"):
        mapping = population.POPULATION_PROXIES
    assert dict(mapping) == {n: population_proxy(n) for n in ("az_nas", "te_nas")}
    with pytest.raises(AttributeError, match="no attribute 'NOPE'"):
        population.NOPE  # noqa: B018


@pytest.mark.parametrize("name", sorted(SUITE))
def test_every_proxy_is_finite_deterministic_and_leaves_the_network_alone(name, tasks):
    net = tiny_nb201("group" if name in KERNEL else "batch")
    net.classifier.bias.requires_grad_(False)  # a frozen parameter must stay frozen
    before = {k: v.clone() for k, v in net.state_dict().items()}
    flags = {k: p.requires_grad for k, p in net.named_parameters()}
    first = compute_proxy(name, net, tasks, seed=3)
    second = compute_proxy(name, net, tasks, seed=3)
    assert math.isfinite(first) and first == second
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "weights or buffers changed"
    assert {k: p.requires_grad for k, p in net.named_parameters()} == flags
    assert all(p.grad is None for p in net.parameters()) and net.training


def test_sign_conventions_on_a_trained_versus_a_dead_network(tasks):
    # a network whose every weight is zero has no gradient signal at all: the saliency
    # proxies must score it strictly below a normally initialised one
    alive = tiny_nb201("batch")
    dead = tiny_nb201("batch")
    with torch.no_grad():
        for m in dead.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.zero_()
    for name in ("grad_norm", "snip", "synflow", "l2_norm"):
        assert compute_proxy(name, alive, tasks) > compute_proxy(name, dead, tasks), name


def test_synflow_is_depth_times_the_flow_for_a_bias_free_linear_chain(tasks):
    # R = 1ᵀ|W2||W1|1 is homogeneous of degree 1 in each layer, so Σ W ⊙ ∂R/∂W = R per layer
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5, bias=False), nn.BatchNorm1d(5),
                        nn.Linear(5, 3, bias=False))
    w1, w2 = net[1].weight.detach().double().abs(), net[3].weight.detach().double().abs()
    flow = float(w2.sum(0) @ w1 @ torch.ones(3 * 8 * 8, dtype=torch.float64))
    assert compute_proxy("synflow", net, tasks) == pytest.approx(2 * flow, rel=1e-10)


def _manual_loss_grads(net: nn.Module, tasks: TaskBatch):
    x, y = tasks.inputs(), tasks.labels()
    weights = [net.fc1.weight, net.fc2.weight]
    loss = F.cross_entropy(net(x)[1], y)
    return [w.detach() for w in weights], torch.autograd.grad(loss, weights)


def test_gradient_saliencies_match_their_formulas(tasks):
    torch.manual_seed(0)
    net = Mlp(3 * 8 * 8)
    weights, grads = _manual_loss_grads(net, tasks)
    assert compute_proxy("grad_norm", net, tasks) == pytest.approx(float(sum(g.norm() for g in grads)), rel=1e-6)
    assert compute_proxy("snip", net, tasks) == pytest.approx(
        float(sum((g * w).abs().sum() for g, w in zip(grads, weights))), rel=1e-6)
    assert compute_proxy("plain", net, tasks) == pytest.approx(
        float(sum((g * w).sum() for g, w in zip(grads, weights))), rel=1e-5)


def test_grasp_matches_an_explicit_hessian(tasks):
    torch.manual_seed(1)
    net = Mlp(3 * 8 * 8, hidden=4).double()
    x, y = tasks.inputs().double(), tasks.labels()
    names = ["fc1.weight", "fc2.weight"]
    params = dict(net.named_parameters())
    shapes = [params[n].shape for n in names]
    sizes = [params[n].numel() for n in names]

    def loss_of(flat):
        parts = dict(zip(names, (t.view(s) for t, s in zip(flat.split(sizes), shapes))))
        out = functional_call(net, {**{k: v.detach() for k, v in params.items()}, **parts}, (x,))
        return F.cross_entropy(out[1], y)

    flat = torch.cat([params[n].detach().flatten() for n in names])
    g = torch.autograd.functional.jacobian(loss_of, flat)
    hessian = torch.autograd.functional.hessian(loss_of, flat)
    expected = float(-(flat * (hessian @ g)).sum())
    assert compute_proxy("grasp", net, TaskBatch(tasks.support_x.double(), tasks.support_y,
                                                 tasks.query_x.double(), tasks.query_y, 3)) == pytest.approx(
        expected, rel=1e-6)


def test_fisher_matches_its_channel_formula(tasks):
    torch.manual_seed(2)
    net = Mlp(3 * 8 * 8)
    x, y = tasks.inputs(), tasks.labels()
    a1 = net.fc1(x.flatten(1))
    a2 = net.fc2(net.relu(a1))
    g1, g2 = torch.autograd.grad(F.cross_entropy(a2, y), [a1, a2])
    expected = sum(float(0.5 * (a.detach() * g).pow(2).mean(0).sum()) * fan
                   for a, g, fan in ((a1, g1, 3 * 8 * 8), (a2, g2, 6)))
    assert compute_proxy("fisher", net, tasks) == pytest.approx(expected, rel=1e-5)


def test_jacobian_proxies_on_a_linear_network_have_closed_forms(tasks):
    # f(x) = W x: every input Jacobian is the same row, so corrcoef is all ones
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))
    n = tasks.inputs().shape[0]
    eps = 1e-5
    lam = torch.zeros(n, dtype=torch.float64)
    lam[-1] = n
    expected_jacov = float(-(torch.log(lam + eps) + 1 / (lam + eps)).sum())
    assert compute_proxy("jacov", net, tasks) == pytest.approx(expected_jacov, rel=1e-6)
    per_class = n // tasks.ways
    assert compute_proxy("epe_nas", net, tasks) == pytest.approx(tasks.ways * per_class**2 * math.log(1 + eps),
                                                                 rel=1e-6)


def test_nwot_is_the_log_determinant_of_the_hamming_kernel(tasks):
    net = nn.Sequential(nn.Flatten(), nn.ReLU(), nn.Linear(3 * 8 * 8, 3))
    codes = (tasks.inputs().flatten(1) > 0).double()
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T
    assert compute_proxy("nwot", net, tasks) == pytest.approx(float(torch.linalg.slogdet(kernel).logabsdet), rel=1e-9)


def test_size_proxies_count_exactly(tasks):
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 3))
    assert compute_proxy("params", net, tasks) == 3 * 4 * 9 + 8 + (4 * 2 * 9 + 4) + (4 * 3 + 3)
    assert compute_proxy("flops", net, tasks) == 4 * 8 * 8 * 3 * 9 + 4 * 4 * 4 * 2 * 9 + 3 * 4
    norms = [m.weight.detach().norm() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert compute_proxy("l2_norm", net, tasks) == pytest.approx(float(sum(norms)))
    # NAS-Bench-201's own count for the CIFAR-10 network of this cell (C=16, N=5)
    full = build_network(ARCH, num_classes=10, seed=0)
    assert compute_proxy("params", full, tasks) == sum(p.numel() for p in full.parameters())


def test_zen_depends_on_its_seed_only(tasks):
    net = tiny_nb201("batch")
    a, b = compute_proxy("zen", net, tasks, seed=1), compute_proxy("zen", net, tasks, seed=2)
    assert math.isfinite(a) and a != b
    other_weights = build_network(ARCH, C=4, N=1, num_classes=3, seed=99).train()
    assert compute_proxy("zen", other_weights, tasks, seed=1) == pytest.approx(a, rel=1e-6)  # re-initialised


def test_loss_proxies_need_an_output_per_label(tasks):
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    with pytest.raises(ValueError, match="2 outputs but the task labels go up to 2"):
        compute_proxy("grad_norm", net, tasks)


def test_te_nas_ranks_a_population():
    kappa = np.array([10.0, 2.0, np.inf, 5.0])
    regions = np.array([3.0, 1.0, 7.0, 3.0])
    # r(-kappa) = [2, 4, 1, 3]; r(regions) = [2.5, 1, 4, 2.5]
    assert te_nas_scores({"ntk_cond": kappa, "linear_regions": regions}).tolist() == [4.5, 5.0, 5.0, 5.5]
    assert population_proxy("te_nas").inputs == ("ntk_cond", "linear_regions")
    with pytest.raises(ValueError, match="equal 1-D arrays"):
        te_nas_scores({"ntk_cond": kappa, "linear_regions": regions[:2]})
